"""The RecommenderService operator (kopf): one custom resource -> a trainer, serving replicas,
their Service, HPA and Ingress, and a status.

Pure modules (tested directly): ``spec`` and ``fields`` parse the CR, ``env`` fills the env-var
contract, ``builders`` produce the children's manifests, ``diff`` decides whether a live child
needs a write, ``status`` computes what to report. I/O: ``kube`` (the Kubernetes API),
``snapshots`` (the store's LATEST), ``handlers`` (kopf), ``cli`` (``streamrec operator``).
See docs/operator.md.
"""
