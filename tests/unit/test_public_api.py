import importlib
import inspect
import re

import pytest

import fetchpipe

# The public API: a name added, renamed or dropped is a change of the library's promise, made
# here on purpose.
PUBLIC_NAMES = [
    "AdaptivePolicy",
    "BreakerPolicy",
    "ConfigError",
    "ErrorKind",
    "Fetcher",
    "FetchpipeError",
    "HostLimits",
    "HttpCache",
    "InputError",
    "Lane",
    "Limits",
    "Pipeline",
    "ProxyPolicy",
    "Quota",
    "Request",
    "Result",
    "RetryEvent",
    "RetryPolicy",
    "SecurityPolicy",
    "SinkError",
    "Source",
    "Timeouts",
    "Timings",
    "TlsPolicy",
    "TransportError",
    "__version__",
    "fetch_all",
    "run",
    "set_testing",
]


def test_all_is_sorted_and_lists_every_public_name() -> None:
    assert fetchpipe.__all__ == PUBLIC_NAMES
    assert fetchpipe.__all__ == sorted(fetchpipe.__all__)
    public = {
        name
        for name, value in vars(fetchpipe).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    lazy = set(fetchpipe._LAZY)  # imported on first use
    assert public | lazy == set(fetchpipe.__all__) - {"__version__"}
    assert set(fetchpipe.__all__) <= set(dir(fetchpipe))


@pytest.mark.parametrize("name", [n for n in fetchpipe.__all__ if n != "__version__"])
def test_every_public_name_is_a_class_or_function_of_the_package(name: str) -> None:
    value = getattr(fetchpipe, name)
    assert inspect.isclass(value) or inspect.isfunction(value)
    assert value.__module__.partition(".")[0] == "fetchpipe"  # not a re-exported dependency


def test_the_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", fetchpipe.__version__)


@pytest.mark.parametrize("name", sorted(fetchpipe._LAZY))
def test_a_name_imported_on_first_use_is_its_module_s_object(name: str) -> None:
    module = importlib.import_module(fetchpipe._LAZY[name])
    assert getattr(fetchpipe, name) is getattr(module, name)
    assert vars(fetchpipe)[name] is getattr(module, name)  # kept: the next lookup is direct


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'fetchpipe' has no attribute 'Fetch'"):
        fetchpipe.Fetch  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'Fetch'"):
        from fetchpipe import Fetch  # noqa: F401


def test_a_request_repr_shows_no_secret() -> None:
    request = fetchpipe.Request(
        "https://user:pa55word-x@api.example.com/v1/items?api_key=canary-q&page=2",
        headers={"Authorization": "Bearer canary-h", "Accept": "application/json"},
        params={"token": "canary-p"},
        key=7,
    )
    text = repr(request) + repr(fetchpipe.Result(request)) + str([request])
    for secret in ("pa55word-x", "canary-q", "canary-h", "canary-p"):
        assert secret not in text
    assert repr(request) == (
        "Request(url='https://user:…@api.example.com/v1/items?api_key=…&page=…', "
        "headers=[Accept, Authorization], params=[token], key=7)"
    )


def test_an_unknown_transport_name_is_refused_with_the_choices() -> None:
    with pytest.raises(fetchpipe.ConfigError, match=r"unknown transport 'curl'.*aiohttp, fast"):
        fetchpipe.Fetcher(transport="curl")


def test_source_is_the_public_name_of_a_result_s_provenance() -> None:
    from fetchpipe._models import Provenance

    assert fetchpipe.Source is Provenance
    assert fetchpipe.Result(fetchpipe.Request("https://h/")).source is fetchpipe.Source.NETWORK
    assert [member.value for member in fetchpipe.Source] == [
        "network",
        "cache",
        "revalidated",
        "stale",
    ]


def test_pipeline_destination_is_the_public_name_of_a_parsed_destination_url() -> None:
    import fetchpipe.pipeline
    from fetchpipe.pipeline.spec.destination import DestinationUrl, parse_destination

    assert "Destination" in fetchpipe.pipeline.__all__
    assert fetchpipe.pipeline.Destination is DestinationUrl
    assert vars(fetchpipe.pipeline)["Destination"] is DestinationUrl  # kept under its old name
    assert parse_destination("jsonl://out") == fetchpipe.pipeline.Destination("jsonl", "out")
