"""``python -m fetchpipe``: the same as the ``fetchpipe`` command."""

from fetchpipe.cli import entry_point

if __name__ == "__main__":
    entry_point(prog_name="fetchpipe")
