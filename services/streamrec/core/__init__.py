"""Pure core: events, id maps, window, model, snapshots. No Kafka, S3, HTTP or Kubernetes here."""
