"""The user-space data path between the decoder and the sinks.

Packets are dispatched to the enabled events' handlers, each event gets its
``context`` (process, cgroup, container), passes the user's scope and data
``filters``, is rendered (hostcore's map or ``tracee``'s), packed once and queued
for every sink; ``accounting`` counts all of it, losses first. ``selection``
resolves the user's ``--events`` to events and signatures.
"""
