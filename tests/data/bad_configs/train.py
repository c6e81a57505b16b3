"""A trivial script so that `run:` entries in this folder are valid."""


def main() -> dict[str, float]:
    return {"accuracy": 1.0}


if __name__ == "__main__":
    main()
