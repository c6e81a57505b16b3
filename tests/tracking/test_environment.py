import importlib.metadata
import platform
import re
import sys

from ml_experiment.tracking.environment import requirements_txt, software_info


def test_software_info():
    info = software_info()
    assert set(info) == {
        "python_version",
        "python_implementation",
        "python_executable",
        "os",
        "os_name",
        "os_release",
        "machine",
    }
    assert all(isinstance(v, str) for v in info.values())
    assert info["python_version"] == platform.python_version()
    assert info["python_version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert info["python_executable"] == sys.executable
    assert info["os_name"] == platform.system()


def test_requirements_txt_lists_installed_distributions():
    text = requirements_txt()
    lines = text.splitlines()
    assert lines[0].startswith("# ")
    assert platform.python_version() in lines[0]
    entries = [line for line in lines[1:] if line]
    assert all(not line.startswith("#") for line in entries)
    pins = {}
    for line in entries:
        requirement = line.split("  # ", 1)[0]
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==\S+", requirement), line
        name, version = requirement.split("==")
        pins[name.lower().replace("_", "-")] = version
    assert pins["numpy"] == importlib.metadata.version("numpy")
    assert pins["pytest"] == importlib.metadata.version("pytest")
    assert text.endswith("\n")


def test_requirements_txt_sorted_case_insensitively_and_deduplicated():
    entries = [line.split("==")[0] for line in requirements_txt().splitlines()[1:]]
    normalized = [re.sub(r"[-_.]+", "-", name).lower() for name in entries]
    assert normalized == sorted(normalized)
    assert len(normalized) == len(set(normalized))


class _FakeDist(importlib.metadata.Distribution):
    def __init__(self, files: dict[str, str]) -> None:
        self._files = files

    def read_text(self, filename):
        return self._files.get(filename)

    def locate_file(self, path):  # pragma: no cover - unused
        raise NotImplementedError


def test_duplicates_first_on_path_wins_and_origins(monkeypatch):
    dists = [
        _FakeDist({"METADATA": "Metadata-Version: 2.1\nName: Zeta_Pkg\nVersion: 2.0\n\nbody"}),
        _FakeDist({"METADATA": "Name: zeta-pkg\nVersion: 1.0\n"}),
        _FakeDist({"METADATA": "Name: alpha\nVersion: 0.1\n"}),
        _FakeDist(
            {
                "METADATA": "Name: Beta\nVersion: 3\n",
                "direct_url.json": '{"url": "https://u:p@example.com/beta.git", '
                '"vcs_info": {"vcs": "git", "commit_id": "abc123"}}',
            }
        ),
        _FakeDist(
            {
                "PKG-INFO": "Name: local\nVersion: 0.0.1\n",
                "direct_url.json": '{"url": "file:///src/local", "dir_info": {"editable": true}}',
            }
        ),
        _FakeDist({}),  # broken metadata: skipped
    ]
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(dists))
    lines = requirements_txt().splitlines()[1:]
    assert lines == [
        "alpha==0.1",
        "Beta==3  # from git+https://***@example.com/beta.git@abc123",
        "local==0.0.1  # from file:///src/local (editable)",
        "Zeta_Pkg==2.0",
    ]
