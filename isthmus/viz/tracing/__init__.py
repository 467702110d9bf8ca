"""Tracing: the `tracing` add-on's OTLP collector, and the traces the CLI shows.

The sidecars send spans over OTLP/gRPC (their config: `isthmus.xds.translate.tracing`)
to a collector the add-on runs in each cluster (`collector`: the I/O, a gRPC receiver
and a query socket). `spans` turns OTLP into plain records, `store` keeps a bounded
number of them, `queries` assembles them into traces, across clusters too, and
`manifests` is what the add-on applies. All but `collector` are pure.
May import platform and model.
"""
