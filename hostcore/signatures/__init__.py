"""Signatures: ``spec`` is what a plugin declares, ``loading`` checks what each one
consumes when plugins load, ``runtime`` feeds them events and builds their findings."""
