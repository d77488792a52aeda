"""``python -m fetchpipe``: the same as the ``fetchpipe`` command."""

from fetchpipe.cli import main

if __name__ == "__main__":
    main(prog_name="fetchpipe")
