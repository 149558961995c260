"""standalone owns independent re-implementations, on purpose: ``renet.py`` re-derives and re-nets
a batch from a dispute bundle with nothing but the standard library; it imports nothing from
clearlane and is shipped verbatim in dispute bundles."""
