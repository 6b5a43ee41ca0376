"""Streaming connector: Kafka (aiokafka) in, labeled FHIR R4 transaction Bundles out, at least once."""
