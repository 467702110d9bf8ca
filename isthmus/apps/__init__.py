"""Sample applications for the demo and the tests, each runnable as `python -m isthmus.apps.<name>`.

They know nothing of the mesh: they import no other isthmus package, only the standard
library and grpcio, so they run unchanged in any pod, with or without a sidecar.
"""
