"""The bottom stage: platform-neutral resource types and the index the other stages read.

Imports nothing else of isthmus and does no I/O.
"""
