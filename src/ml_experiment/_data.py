"""``DataLoader``: data loaded once per job and shared by every trial."""

from __future__ import annotations

from typing import Any, ClassVar

_MISSING = object()


class DataLoader:
    """Subclass and implement the classmethod ``load_data()``; pass the class to ``@job(data_loader=...)``.

    In a group ``load_data`` runs once in the driver; its result is put in the Ray object store
    and every trial's ``MyLoader.load_data()`` returns that shared object (numpy arrays are
    zero-copy views of the store). In a single experiment it runs once.
    """

    _ml_experiment_shared: ClassVar[Any] = _MISSING

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("load_data")
        if own is None:
            return
        user_fn = own.__func__ if isinstance(own, classmethod) else own

        def load_data(klass: type[DataLoader]) -> Any:
            # The shared value is installed on the exact class the job named, not on subclasses.
            shared = klass.__dict__.get("_ml_experiment_shared", _MISSING)
            if shared is not _MISSING:
                return shared
            return user_fn(klass)

        load_data.__doc__ = user_fn.__doc__
        load_data.__wrapped__ = user_fn  # type: ignore[attr-defined]
        cls.load_data = classmethod(load_data)  # type: ignore[assignment]

    @classmethod
    def load_data(cls) -> Any:
        """Load and return the data. Subclasses must implement it."""
        raise NotImplementedError(f"{cls.__name__} must implement the classmethod load_data()")

    @classmethod
    def _compute(cls) -> Any:
        """Run the user's ``load_data`` ignoring any shared value."""
        fn = getattr(cls.load_data, "__wrapped__", None)
        return fn(cls) if fn is not None else cls.load_data()

    @classmethod
    def _install(cls, value: Any) -> None:
        cls._ml_experiment_shared = value

    @classmethod
    def _uninstall(cls) -> None:
        if "_ml_experiment_shared" in cls.__dict__:
            delattr(cls, "_ml_experiment_shared")


def loader_class(obj: Any) -> type[DataLoader]:
    """Accept a DataLoader subclass or an instance of one (the thesis passed instances)."""
    from ml_experiment.exceptions import ConfigError

    cls = obj if isinstance(obj, type) else type(obj)
    if not issubclass(cls, DataLoader):
        raise ConfigError(
            f"must be a DataLoader subclass, got {obj!r}", source="@job", field="data_loader"
        )
    if "load_data" not in {k for c in cls.__mro__[:-1] if c is not DataLoader for k in c.__dict__}:
        raise ConfigError(
            f"{cls.__name__} must implement the classmethod load_data()",
            source="@job",
            field="data_loader",
        )
    return cls
