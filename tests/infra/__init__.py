"""Real infrastructure for the tests: Kafka (KRaft), MinIO and a Kubernetes control plane.

Each component is a real binary built or resolved by `scripts/provision-*.sh`, started on free
ports on 127.0.0.1. Nothing here is a fake; when something cannot start, it raises
`InfraError` naming the component and the reason, and the test run fails.
"""
