"""Sample applications for the demo and the tests. They know nothing of the mesh."""
