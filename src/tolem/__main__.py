"""`python -m tolem` is the same as the `tolem` command."""

from tolem.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
