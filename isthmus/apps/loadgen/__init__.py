"""An open-loop HTTP load generator that shows how traffic spread over whoami pods.

`options` parses and validates the command line, `runner` sends requests on schedule
(the only module doing I/O), `report` turns what happened into numbers and text.
"""
