"""The `isthmus` command: the top stage; may import everything below it."""
