"""``python -m mmkit``: the same entry point as the ``mmkit`` console script."""

from mmkit.cli.app import main

if __name__ == "__main__":
    main()
