import inspect

import fetchpipe


def test_all_is_sorted_and_lists_every_public_name() -> None:
    assert fetchpipe.__all__ == sorted(fetchpipe.__all__)
    public = {
        name
        for name, value in vars(fetchpipe).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    lazy = {"Pipeline"}  # loaded on first use
    assert public | lazy == set(fetchpipe.__all__) - {"__version__"}
    for name in fetchpipe.__all__:
        assert getattr(fetchpipe, name) is not None
