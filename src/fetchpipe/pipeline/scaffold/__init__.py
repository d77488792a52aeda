"""``fetchpipe init``: a first pipeline file written from what an API answers.

One GET of the URL (and of a second page when one is found) is looked at; what it shows
becomes a commented pipeline file that ``fetchpipe run`` loads as it is:

- :mod:`.response`: a response as the guesses see it (a frozen value);
- :mod:`.bodies`: the shape of a JSON body: where its lists of objects and its scalars are,
  and the paths a pipeline file names them by;
- :mod:`.records_guess`: the records list, the primary key, an incremental candidate (pure);
- :mod:`.paging_guess`: the pagination candidates a first response suggests, and whether a
  second page confirms one (pure; the requests are those the runtime's paginators make);
- :mod:`.credentials`: the URL and the headers given, with every secret replaced by a
  ``${VAR}`` in what is written (pure);
- :mod:`.detection`: everything above as one frozen :class:`~.detection.Detection`;
- :mod:`.render`: the YAML text with its comments, checked by loading it with the pipeline
  loader before it is written;
- :mod:`.probe`: the requests, through the engine's :class:`~fetchpipe.engine.fetcher.Fetcher`
  (so the proxies, TLS settings and limits apply as everywhere), few and bounded.

Only :mod:`.probe` sends anything; the rest is tested without a network.
"""
