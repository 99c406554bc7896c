"""NATS JetStream for hostcore: the ``nats`` sink and the ``nats://`` source of ``tail``."""
