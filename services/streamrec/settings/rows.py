"""The settings table: every setting of every streamrec service, one row each.

To add a setting, add its row here and read it where it is used; then ``make settings``
regenerates docs/configuration.md, both CRDs and Helm's values.schema.json (a unit test fails
until the committed files equal the generator's output). Defaults are taken from the core
dataclass that uses the setting where one exists (``ALSParams``, ``ScoringParams``,
``ItemItemParams``, ``SequentialParams``), so each is written once.
"""

from __future__ import annotations

from streamrec.core.domains import MAX_TS, MAX_WEIGHT, Range
from streamrec.core.events.erasurekey import check_key
from streamrec.core.events.feedback import DEFAULT_WEIGHTS
from streamrec.core.origins import normalise_origin
from streamrec.core.scoring.ann import AnnParams
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.sequential import SequentialParams

from .experiments import Experiments
from .kinds import Bool, Enum, Num, Str
from .placements import Placements, PlacementSource
from .structured import Bind, Checked, Feedback, Listed, Opaque, ScorerWeights, StoreUrl
from .table import Section, Setting

__all__ = ["ENGINES", "FORMATS", "LOG_FORMATS", "PULL_POLICIES", "SASL_MECHANISMS", "SECTIONS",
           "SECURITY_PROTOCOLS", "SETTINGS"]

_ALS, _SCORING, _ITEM_ITEM = ALSParams(), ScoringParams(), ItemItemParams()
_ANN, _SEQUENTIAL = AnnParams(), SequentialParams()
FORMATS = ("auto", "text", "json")
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_FORMATS = ("full", "plain", "json")
ENGINES = ("implicit", "spark")

T, S, R, OP = "trainer", "serve", "run", "operator"
_INF = float("inf")
_SPARK_MEMORY = Str(pattern=r"^[1-9][0-9]{0,6}[kmgt]$", max_length=8,
                    rule="must be a JVM memory size such as 512m or 4g")
_SECRET_NAME = Str(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253,
                   rule="must be a valid Secret name")
# An origin as the CRD can check it (core/origins.py normalises and checks it fully).
_ORIGIN = {"type": "string", "minLength": 1, "maxLength": 2048,
           "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]+/?$"}
_HOST = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "string"}],
             "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                        r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
             "x-kubernetes-int-or-string": True}
_RESOURCE_LIST = {"type": "object", "required": ["cpu", "memory"],
                  "additionalProperties": _QUANTITY}
_RESOURCES = Opaque({"type": "object", "required": ["requests", "limits"],
                     "properties": {"requests": _RESOURCE_LIST, "limits": _RESOURCE_LIST}})
TRAINER_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"},
                     "limits": {"cpu": "2", "memory": "4Gi"}}
SERVING_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"},
                     "limits": {"cpu": "1", "memory": "1Gi"}}
#: gunicorn's graceful_timeout (serving/server.py): seconds in-flight requests may finish after
#: SIGTERM. The serving pod's termination grace period covers it (operator/builders.py).
SERVING_GRACEFUL_S = 10
# The Helm schema of the feedback table also names the rules the operator checks.
_HELM_FEEDBACK = Opaque({"type": "object", "maxProperties": 64,
                         "propertyNames": {"pattern": "^[a-z][a-z0-9_-]{0,31}$"},
                         "additionalProperties": {"type": "number", "minimum": -1000000.0,
                                                  "maximum": 1000000.0, "not": {"enum": [0]}}})


def _n(low: float, high: float, *, integer: bool = False, open_low: bool = False) -> Num:
    return Num(Range(low, high, open_low=open_low, integer=integer))


def _i(low: float, high: float = _INF) -> Num:
    return _n(low, high, integer=True)


SETTINGS: tuple[Setting, ...] = (
    # --- the image (CR only) ---------------------------------------------------------------
    Setting("repository", Str(), None, "Repository of the streamrec image.", cr="image.repository",
            required=True, config=False, env=False, flag=False),
    Setting("tag", Str(), None, "Tag of the streamrec image.", cr="image.tag", required=True,
            config=False, env=False, flag=False),
    Setting("pull_policy", Enum(PULL_POLICIES), "IfNotPresent", "imagePullPolicy of the pods.",
            cr="image.pullPolicy", config=False, env=False, flag=False),
    # --- Kafka -----------------------------------------------------------------------------
    Setting("bootstrap_servers", Str(), "127.0.0.1:9092", "Kafka bootstrap servers, "
            "host:port[,host:port...].", (T, S), cr="kafka.bootstrapServers", cr_default=None,
            required=True, helm="example.kafka.bootstrapServers",
            helm_example="streamrec-kafka-bootstrap:9092"),
    Setting("topic", Str(), "interactions", "Topic of interaction events.", (T, S, R),
            cr="kafka.topic", helm="example.kafka.topic"),
    Setting("topic_partitions", _i(1, 10_000), None, "Partitions of the interactions topic, "
            "its user shards (murmur2 of the user id). The trainer creates a missing topic with "
            "this many; serving groups split them (required with serving.groups > 1).",
            (T, S), cr="kafka.partitions", helm="example.kafka.partitions",
            default_text="1 for a topic the trainer creates; an existing topic keeps its own"),
    Setting("group", Str(), "streamrec-trainer", "The trainer's consumer group (the operator "
            "sets <name>-trainer).", (T,)),
    Setting("format", Enum(FORMATS), "auto", "Message format: auto, text or json.", (T, S, R),
            cr="kafka.format", helm="example.kafka.format"),
    Setting("min_weight", _n(0.0, MAX_WEIGHT, open_low=True), None,
            "Drop events whose weight is below this.", (T, S, R), cr="kafka.minWeight"),
    Setting("feedback_weights", Feedback(), tuple(DEFAULT_WEIGHTS.items()),
            "Feedback type to weight, merged over the defaults view=0.5, click=1, like=3, "
            "purchase=5, dislike=-3, hide=-5. A negative weight is negative feedback; events of "
            "a type not listed are dead-lettered (unknown_type). See docs/feedback.md.",
            (T, S, R), cr="model.feedbackWeights", cr_default=None,
            helm="example.model.feedbackWeights", helm_kind=_HELM_FEEDBACK),
    Setting("dlq_topic", Str(), None, "Dead-letter topic.", (T, R), cr="kafka.dlqTopic",
            default_text="<topic>.dlq"),
    Setting("notify_topic", Str(empty_ok=True), None, "Snapshot notify topic; \"\" disables.",
            (T, S, R), cr="kafka.notifyTopic", default_text="<topic>.snapshots ('' disables)"),
    Setting("items_topic", Str(), None, "Topic of item records (categories, hidden, "
            "expires_at).", (T, S, R), cr="kafka.itemsTopic", helm="example.kafka.itemsTopic",
            default_text="<topic>.items"),
    Setting("impressions_topic", Str(), None, "Topic of served lists under a placement with "
            "rotation or exploration (what each user was shown; kept one day).", (T, S, R),
            cr="kafka.impressionsTopic", default_text="<topic>.impressions"),
    Setting("kafka_security_protocol", Enum(SECURITY_PROTOCOLS), "PLAINTEXT",
            "Kafka security protocol.", (T, S), cr="kafka.securityProtocol",
            helm="example.kafka.securityProtocol"),
    Setting("kafka_sasl_mechanism", Enum(SASL_MECHANISMS), None,
            "SASL mechanism; the operator passes it on only with a SASL_* protocol.", (T, S),
            cr="kafka.saslMechanism",
            cr_default="SCRAM-SHA-512", cr_env=False),
    Setting("kafka_credentials_secret", _SECRET_NAME, None, "Secret with keys username and "
            "password (STREAMREC_KAFKA_USERNAME, STREAMREC_KAFKA_PASSWORD); required with a SASL "
            "protocol, refused without one.", cr="kafka.credentialsSecret", config=False, env=False,
            flag=False, helm="example.kafka.credentialsSecret"),
    Setting("kafka_username", Str(), None, "SASL user name (from a Secret).", (T, S),
            secret=True),
    Setting("kafka_password", Str(), None, "SASL password (from a Secret).", (T, S),
            secret=True),
    Setting("from_beginning", Bool(), False, "Without a snapshot, read the topic from its "
            "start.", (T,), run_default=True),
    # --- model and training ----------------------------------------------------------------
    Setting("window_size", _i(1, 100_000_000), 1_000_000, "Interactions kept in the sliding "
            "window.", (T, R), cr="training.windowSize", helm="example.training.windowSize",
            run_default=200_000),
    Setting("retrain_every", _i(1, 1_000_000_000_000), 10_000, "Retrain after this many new "
            "events.", (T, R), cr="training.retrainEvery", helm="example.training.retrainEvery",
            run_default=5_000),
    Setting("retrain_interval", _n(0.1, 1e9), 60.0, "... or after this many seconds with new "
            "events.", (T, R), cr="training.retrainIntervalSeconds", cr_kind=_i(1, 1e9),
            cr_default=60, helm="example.training.retrainIntervalSeconds", run_default=5.0),
    Setting("decay_half_life", _n(1.0, MAX_TS), None, "Seconds after which an event counts "
            "half in the fit.", (T, R), cr="training.decayHalfLifeSeconds",
            default_text="none (no decay)"),
    Setting("factors", _i(1, 1024), _ALS.factors, "Latent factors of the ALS model.", (T, R),
            cr="model.factors", helm="example.model.factors", run_default=32),
    Setting("regularization", _n(1e-6, 1e6), _ALS.regularization, "L2 regularization of ALS.",
            (T, R), cr="model.regularization", helm="example.model.regularization"),
    Setting("iterations", _i(1, 1000), _ALS.iterations, "ALS iterations per fit.", (T, R),
            cr="model.iterations", helm="example.model.iterations", run_default=10),
    Setting("alpha", _n(1e-6, 1e6), _ALS.alpha, "Confidence scaling of interaction weights.",
            (T, R), cr="model.alpha", helm="example.model.alpha"),
    Setting("use_gpu", Bool(), _ALS.use_gpu, "Fit on a GPU (implicit's CUDA build); in a "
            "RecommenderService also request one in resources.limits, e.g. nvidia.com/gpu: 1.",
            (T, R), cr="training.gpu"),
    Setting("training_resources", _RESOURCES, TRAINER_RESOURCES, "Requests and limits of the "
            "trainer container; both need cpu and memory, other resources pass through.",
            cr="training.resources", config=False, env=False, flag=False,
            helm="example.training.resources"),
    Setting("fit_threads", _i(0, 1024), _ALS.num_threads, "Threads of a fit; 0: all cores.",
            (T, R)),
    # --- the training engine (issue 26; docs/spark.md) --------------------------------------
    Setting("training_engine", Enum(ENGINES), "implicit", "What fits ALS: implicit in the "
            "trainer process, or Spark MLlib with the trainer as the driver (docs/spark.md).",
            (T, R), cr="training.engine", helm="example.training.engine"),
    Setting("spark_master", Str(max_length=2048), "local[2]", "Spark master URL of the spark "
            "engine: local[N] (N cores in the trainer's JVM) or k8s://https://HOST:PORT.",
            (T, R)),
    Setting("spark_executors", _i(1, 10_000), 2, "Executors of the spark engine "
            "(spark.executor.instances; ignored by a local master).", (T, R),
            cr="training.spark.executors", helm="example.training.spark.executors"),
    Setting("spark_executor_cores", _i(1, 256), 1, "Cores per executor of the spark engine.",
            (T, R), cr="training.spark.cores"),
    Setting("spark_executor_memory", _SPARK_MEMORY, "2g", "Heap per executor of the spark "
            "engine (spark.executor.memory).", (T, R), cr="training.spark.memory"),
    Setting("spark_driver_memory", _SPARK_MEMORY, "1g", "Heap of the spark engine's driver "
            "JVM in the trainer (spark.driver.memory; with local[N] it runs the fit too).",
            (T, R)),
    Setting("spark_image", Str(max_length=1024), None, "Container image of the spark engine's "
            "executor pods (spark.kubernetes.container.image).", (T, R),
            cr="training.spark.image", default_text="none"),
    Setting("metrics_port", _i(0, 65535), 9100, "Port of the trainer's Prometheus metrics.",
            (T,)),
    # --- scoring ---------------------------------------------------------------------------
    Setting("recency_decay", _n(0.0, 100.0), _SCORING.recency_decay, "Each step back in a "
            "user's history multiplies an event's weight by exp(-recencyDecay); 0 turns it off.",
            (T, R), cr="scoring.recencyDecay", helm="example.scoring.recencyDecay"),
    Setting("recency_half_life", _n(1.0, MAX_TS), _SCORING.recency_half_life, "Time-based "
            "recency: an event counts half per half-life (seconds) before the user's newest.",
            (T, R), cr="scoring.recencyHalfLifeSeconds",
            helm="example.scoring.recencyHalfLifeSeconds", default_text="none (off)"),
    Setting("history_cap", _i(1, 100_000), _SCORING.history_cap, "Newest events per user the "
            "scorer reads; seen items are never capped.", (T, R), cr="scoring.historyCap",
            helm="example.scoring.historyCap"),
    Setting("item_item_weight", _n(0.0, 1.0), _SCORING.item_item_weight, "Blend weight of the "
            "item-item model: 0 ALS alone, 1 item-item alone.", (T, R),
            cr="scoring.itemItemWeight", helm="example.scoring.itemItemWeight"),
    Setting("sequential_weight", _n(0.0, 1.0), _SCORING.sequential_weight, "Blend weight of "
            "the sequential scorer (what comes next after the user's newest items) beside ALS "
            "(1-β) and item-item (β); 0 turns it off.", (T, R),
            cr="scoring.sequentialWeight", helm="example.scoring.sequentialWeight"),
    Setting("scoring_weights", ScorerWeights(), None, "The blend table, scorer name to weight "
            "(e.g. als=0.5,item_item=0.5): every registered scorer with a weight > 0 is fitted "
            "and blended; one left out weighs 0. Unset: als=1-β,item_item=β,sequential=σ with "
            "β the item-item weight and σ the sequential weight. See docs/architecture.md.",
            (T, R), cr="scoring.weights", cr_default=None, helm="example.scoring.weights",
            default_text="als=1-itemItemWeight,item_item=itemItemWeight,"
                         "sequential=sequentialWeight"),
    Setting("item_item_l2", _n(0.0, 1e9, open_low=True), _ITEM_ITEM.l2, "EASE's L2 "
            "regularisation lambda.", (T, R), cr="scoring.itemItemL2",
            helm="example.scoring.itemItemL2"),
    # Dense EASE holds n² float32 (10 GB at 50k items) and inverts it in O(n³).
    Setting("item_item_max_dense", _i(0, 50_000), _ITEM_ITEM.max_dense_items, "Largest "
            "catalogue fitted by dense EASE; beyond it, sparse cosine neighbours.", (T, R),
            cr="scoring.itemItemMaxDenseItems", helm="example.scoring.itemItemMaxDenseItems"),
    Setting("item_item_neighbours", _i(1, 10_000), _ITEM_ITEM.neighbours, "Neighbours per "
            "item of the sparse fallback.", (T, R), cr="scoring.itemItemNeighbours",
            helm="example.scoring.itemItemNeighbours"),
    # The sequential scorer (core/scoring/sequential.py): sequential rules, "what comes next".
    Setting("sequential_steps", _i(1, 100), _SEQUENTIAL.steps, "Events after an item that "
            "count as coming next for the sequential scorer, each weighted 1/distance.",
            (T, R), cr="scoring.sequentialSteps", helm="example.scoring.sequentialSteps"),
    Setting("sequential_successors", _i(1, 10_000), _SEQUENTIAL.successors, "Successors kept "
            "per item by the sequential scorer (the heaviest; bounds its memory).", (T, R),
            cr="scoring.sequentialSuccessors", helm="example.scoring.sequentialSuccessors"),
    Setting("sequential_query_items", _i(1, 1_000), _SEQUENTIAL.query_items, "A user's newest "
            "distinct items the sequential scorer reads (weighted by sequential_query_decay).",
            (T, R), cr="scoring.sequentialQueryItems",
            helm="example.scoring.sequentialQueryItems"),
    Setting("sequential_query_decay", _n(0.0, 10.0), _SEQUENTIAL.query_decay, "Weight of "
            "those items by position p (the newest 1): exp(-decay x (p - 1)); 0: all alike.",
            (T, R), cr="scoring.sequentialQueryDecay",
            helm="example.scoring.sequentialQueryDecay"),
    Setting("sequential_predecessors", _n(0.0, 1.0), _SEQUENTIAL.predecessors, "Weight of "
            "the backward counts (what came before an item) beside the forward ones in the "
            "sequential scorer's scores; 0: forward only (the next-items route always is).",
            (T, R), cr="scoring.sequentialPredecessors",
            helm="example.scoring.sequentialPredecessors"),
    # Item search past brute force (core/scoring/ann.py); thresholds measured in bench/ann.py.
    Setting("ann_min_items", _i(0, 1_000_000_000), _ANN.min_items, "Smallest catalogue for "
            "which the trainer builds an HNSW graph (faiss, inner product) into the snapshot, "
            "and serving ranks through it instead of scoring every item; 0: never (exact).",
            (T, R), cr="scoring.annMinItems", helm="example.scoring.annMinItems"),
    Setting("ann_ef_search", _i(1, 100_000), _ANN.ef_search, "HNSW search breadth (faiss's "
            "efSearch, at least the number of results asked): higher is slower and closer to "
            "exact. Stored in the snapshot with its graph.", (T, R), cr="scoring.annEfSearch",
            helm="example.scoring.annEfSearch"),
    # --- snapshots -------------------------------------------------------------------------
    Setting("store", StoreUrl(), "./data/snapshots", "s3://bucket/prefix or a directory (the "
            "operator sets s3://<bucket>/<prefix>).", (T, S, R),
            run_default="<data-dir>/snapshots"),
    Setting("bucket", Str(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", min_length=3,
                          max_length=63, rule="must be a valid S3 bucket name"), None,
            "S3 bucket name (lowercase letters, digits, '.', '-'); the services get "
            "STREAMREC_STORE=s3://<bucket>/<prefix>.", cr="snapshots.bucket",
            required=True, config=False, env=False, flag=False, helm="example.snapshots.bucket",
            helm_example="streamrec"),
    Setting("prefix", Str(empty_ok=True), None, "Key prefix in the bucket; defaults to the "
            "resource name, so several services can share a bucket.", cr="snapshots.prefix",
            config=False, env=False, flag=False,
            helm="example.snapshots.prefix"),
    Setting("s3_endpoint", Str(), None, "S3 endpoint URL, e.g. http://minio:9000.", (T, S),
            cr="snapshots.endpoint", helm="example.snapshots.endpoint", helm_example="http://minio:9000",
            default_text="the AWS default"),
    Setting("region", Str(), None, "S3 region (AWS_REGION).", cr="snapshots.region",
            config=False, env=False, flag=False),
    Setting("snapshots_credentials_secret", _SECRET_NAME, None, "Secret with keys "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (passed as those env vars).",
            cr="snapshots.credentialsSecret",
            required=True, config=False, env=False, flag=False,
            helm="example.snapshots.credentialsSecret", helm_example="minio-credentials"),
    # Forgetting (core/events/erasurekey.py): every component of a deployment hashes erased ids
    # alike.
    Setting("erasure_key", Checked(check_key), None, "The HMAC key of tombstones and erasure "
            "records (at least 32 bytes, e.g. openssl rand -hex 32; from a Secret). Unset: the "
            "snapshot store keeps a generated one (ERASURE_KEY next to LATEST); docs/feedback.md, "
            "\"Forgetting\".", (T, S, R), secret=True,
            default_text="generated once, kept in the store (ERASURE_KEY)"),
    Setting("erasure_key_secret", _SECRET_NAME, None, "Secret with key erasureKey, the HMAC key "
            "of erased ids (STREAMREC_ERASURE_KEY in the trainer and serving); unset, the store "
            "keeps a generated one.", cr="snapshots.erasureKeySecret", config=False, env=False,
            flag=False, helm="example.snapshots.erasureKeySecret"),
    Setting("keep", _i(1, 1000), 5, "Snapshots kept in the store.", (T, R),
            cr="snapshots.keep", helm="example.snapshots.keep"),
    # --- serving ---------------------------------------------------------------------------
    Setting("replicas", _i(0), 2, "Serving replicas; ignored while autoscaling is enabled.",
            cr="serving.replicas", config=False, env=False, flag=False,
            helm="example.serving.replicas"),
    # Serving groups (core/groups.py, serving/groups/, docs/groups.md).
    Setting("serving_groups", _i(1, 64), 1, "Serving groups: group g owns the users of the "
            "partitions p with p % groups == g, folds in only those and forwards requests for "
            "other users to their owner. 1: every replica serves every user. With more than "
            "one, the trainer writes each partition's users apart in the snapshot, so a group "
            "fetches and maps only its own.", (T, S),
            cr="serving.groups", helm="example.serving.groups"),
    Setting("serving_group", _i(0, 63), 0, "This replica's group, in [0, serving_groups) (the "
            "operator sets it per Deployment).", (S,)),
    Setting("group_urls", Listed(normalise_origin, _ORIGIN, max_items=64,
                                 noun="URLs like http://host:port"), (),
            "Each group's base URL, in group order, where requests for its users are forwarded "
            "(the operator sets them to the groups' Services). Required with serving_groups > 1.",
            (S,), default_text="none"),
    Setting("forward_timeout", _n(0.01, 60.0), 2.0, "Seconds a forwarded request waits for the "
            "owning group before answering 503 owner_unavailable.", (S,),
            cr="serving.forwardTimeoutSeconds", helm="example.serving.forwardTimeoutSeconds"),
    Setting("shutdown_delay_seconds", _i(0, 300), 5, "Seconds a serving pod that is told to "
            "stop keeps answering (a preStop sleep) before it stops taking connections, so that "
            "the Service and the Ingress stop sending it requests first; 0: none.",
            cr="serving.shutdownDelaySeconds", config=False, env=False, flag=False,
            helm="example.serving.shutdownDelaySeconds"),
    Setting("bind", Bind(), "0.0.0.0:8000", "Address the HTTP server listens on.", (S, R),
            run_default="127.0.0.1:8000"),
    Setting("workers", _i(1, 256), 2, "gunicorn workers per pod.", (S,), cr="serving.workers",
            helm="example.serving.workers"),
    Setting("threads", _i(1, 1024), 4, "Threads per worker.", (S, R), cr="serving.threads",
            helm="example.serving.threads"),
    Setting("timeout", _n(0.1, 3600.0), 30.0, "gunicorn worker timeout, seconds.", (S, R)),
    Setting("reload_interval", _n(0.1, 3600.0), 5.0, "Seconds between polls of LATEST for a "
            "new snapshot.", (S, R), cr="serving.reloadIntervalSeconds", cr_kind=_i(1, 3600),
            cr_default=5, helm="example.serving.reloadIntervalSeconds", run_default=1.0),
    Setting("ingest_token", Str(), None, "Bearer token the write routes require (from a "
            "Secret).", (S, R), secret=True,
            # Set but empty would silently leave every write open: the opposite of the intent.
            refuse_blank="is set but empty, which would leave writes open to anyone; give a "
                         "token, or unset it for open writes"),
    # Pages of other sites that may write (serving/http/writes.py); this server's own always may.
    Setting("allowed_origins", Listed(normalise_origin, _ORIGIN, max_items=100,
                                      noun="origins like https://host[:port]"), (),
            "Web origins (https://host[:port]) whose pages may write from a browser; every "
            "other site's page is refused. The server's own origin (the console) always may. "
            "docs/serving.md, \"Who may write\".", (S, R), cr="serving.allowedOrigins",
            cr_default=None, helm="example.serving.allowedOrigins",
            default_text="none (only this server's own pages)"),
    Setting("ingest_token_secret", _SECRET_NAME, None, "Secret with key token guarding the "
            "write routes (POST /interactions, /items, the delete routes). Unset with an "
            "Ingress: the operator generates one.", cr="serving.ingestTokenSecret",
            config=False, env=False, flag=False, helm="example.serving.ingestTokenSecret"),
    Setting("autoscaling_enabled", Bool(), False, "Create an HPA (autoscaling/v2, CPU "
            "utilisation) for the serving Deployment.",
            cr="serving.autoscaling.enabled", config=False, env=False, flag=False,
            helm="example.serving.autoscaling.enabled"),
    Setting("min_replicas", _i(1), 2, "Fewest serving replicas.",
            cr="serving.autoscaling.minReplicas", config=False, env=False, flag=False,
            helm="example.serving.autoscaling.minReplicas"),
    Setting("max_replicas", _i(1), 10, "Most serving replicas (>= minReplicas).",
            cr="serving.autoscaling.maxReplicas", config=False, env=False, flag=False,
            helm="example.serving.autoscaling.maxReplicas"),
    Setting("target_cpu_utilization_percentage", _i(1, 100), 70, "Average CPU utilization the "
            "HPA aims for.", cr="serving.autoscaling.targetCPUUtilizationPercentage",
            config=False, env=False, flag=False,
            helm="example.serving.autoscaling.targetCPUUtilizationPercentage"),
    Setting("scale_down_stabilization_seconds", _i(0, 3600), 300, "Seconds of lower "
            "recommendations the HPA waits for before it removes serving replicas (its "
            "behavior.scaleDown.stabilizationWindowSeconds; Kubernetes' default 300 keeps a "
            "short lull from dropping pods that the next burst needs again).",
            cr="serving.autoscaling.scaleDownStabilizationSeconds", config=False, env=False,
            flag=False, helm="example.serving.autoscaling.scaleDownStabilizationSeconds"),
    Setting("serving_resources", _RESOURCES, SERVING_RESOURCES, "Requests and limits of the "
            "serving container; both need cpu and memory, other resources pass through.",
            cr="serving.resources", config=False, env=False, flag=False,
            helm="example.serving.resources"),
    Setting("ingress_enabled", Bool(), False, "Create an Ingress for the serving Service.",
            cr="serving.ingress.enabled", config=False, env=False, flag=False,
            helm="example.serving.ingress.enabled"),
    Setting("host", Str(pattern=_HOST, max_length=253, rule="must be a lowercase DNS name"),
            None, "Host name to route; every host when absent.", cr="serving.ingress.host",
            config=False, env=False, flag=False, helm="example.serving.ingress.host"),
    Setting("class_name", Str(), None, "IngressClass (ingressClassName); the cluster default "
            "when absent.",
            cr="serving.ingress.className", config=False, env=False, flag=False,
            helm="example.serving.ingress.className"),
    Setting("path", Str(pattern="^/", min_length=0, rule="must start with '/'"), "/",
            "Path prefix to route (pathType: Prefix).", cr="serving.ingress.path", config=False,
            env=False, flag=False, helm="example.serving.ingress.path"),
    Setting("tls_secret", _SECRET_NAME, None, "TLS Secret for host (host is then required).",
            cr="serving.ingress.tlsSecret", config=False, env=False, flag=False),
    Setting("allow_anonymous_writes", Bool(), False, "Let anyone who reaches the Ingress write "
            "(POST /interactions, /items, the delete routes) without a bearer token. Off by "
            "default: the writes need the token in status.ingestTokenSecret. Refused together with "
            "ingestTokenSecret; true deletes a generated token Secret.",
            cr="serving.ingress.allowAnonymousWrites", config=False, env=False, flag=False,
            helm="example.serving.ingress.allowAnonymousWrites"),
    Setting("cache_dir", Str(), None, "Where serving replicas unpack snapshots.", (S, R),
            run_default="<data-dir>/cache", default_text="a temporary directory"),
    # --- online evaluation (serving/online/tracker.py) ---------------------------------------
    Setting("online_tracking", Bool(), True, "Recommendation ids, CTR and hit rate; off: no "
            "ids, no tallies.", (S, R)),
    Setting("online_horizon", _n(1.0, 86_400.0), 1800.0, "Seconds a served list judges the "
            "user's events.", (S, R)),
    Setting("online_max_users", _i(1, 10_000_000), 50_000, "Last lists kept per worker "
            "(an LRU, ~680 B each: bench/online.py).", (S, R)),
    Setting("online_positive", _n(0.0, MAX_WEIGHT, open_low=True), None, "Weight of a "
            "positive event.", (S, R), default_text="none (every event)"),
    Setting("online_bucket_seconds", _n(1.0, 86_400.0), 60.0, "Sliding-window bucket width.",
            (S, R)),
    Setting("online_buckets", _i(1, 10_000), 60, "Buckets kept (60 x 60 s: one hour).", (S, R)),
    # --- experiments (core/experiments/, docs/experiments.md): a top-level CR field ----------
    Setting("experiments", Experiments(), (), "A/B tests between scoring configurations over "
            "the served snapshot: each a name, start and end (RFC 3339), a traffic share and 2-8 "
            "arms ({name, weight, scoring: overrides of spec.scoring}). As text: the list in "
            "JSON, or the path of a YAML/JSON file holding it. See docs/experiments.md.",
            (S, R), cr="experiments", cr_default=None, helm="example.experiments",
            default_text="none"),
    # --- placements (core/placements/, docs/placements.md): a top-level CR field ------------
    Setting("placements", Placements(), PlacementSource(), "Named serving configurations "
            "that list routes take as placement=: scoring overrides, a CEL filter, boosts, "
            "promotions, rotation, diversity and exploration. As text: the list in JSON/YAML, "
            "or the path of a YAML/JSON file holding it (watched: a change is live without a "
            "restart). See docs/placements.md.", (S, R), cr="placements", cr_default=None,
            cr_env=False, helm="example.placements", default_text="none"),
    # --- embedded --------------------------------------------------------------------------
    Setting("data_dir", Str(), "./data", "Where `streamrec run` keeps its log, snapshots and "
            "cache.", (R,)),
    # --- the operator ----------------------------------------------------------------------
    Setting("operator_status_interval", _n(1.0, 3600.0), 30.0, "Seconds between status "
            "refreshes (children readiness, Secrets, snapshot LATEST).", (OP,), flag=False,
            config=False, helm="operator.statusIntervalSeconds"),
    Setting("liveness_port", _i(0, 65535), 8080, "Port of the liveness endpoint /healthz; 0 "
            "disables.", (OP,), env=False, config=False, helm="operator.livenessPort",
            helm_kind=_i(1, 65535)),
    Setting("log_format", Enum(LOG_FORMATS), "full", "Log format.", (OP,), env=False,
            config=False, helm="operator.logFormat"),
    Setting("verbose", Bool(), False, "Log kopf's progress in detail.", (OP,), env=False,
            config=False, helm="operator.verbose"),
)

#: The objects of ``spec``, in the CRD's order; a row's section is its CR path's parent.
SECTIONS: tuple[Section, ...] = (
    Section("image", "The streamrec image, used for the trainer and serving containers.",
            required=True, default_empty=False),
    Section("kafka", "Where the events come from.", required=True, default_empty=False,
            validations=({"rule": "!has(self.securityProtocol) || "
                                  "!self.securityProtocol.startsWith('SASL_') || "
                                  "has(self.credentialsSecret)",
                          "message": "credentialsSecret is required with a SASL "
                                     "securityProtocol"},)),
    Section("model", "ALS hyperparameters and the feedback table."),
    Section("training", "The trainer: window, retrain triggers, resources."),
    Section("training.spark", "The spark engine's executors (training.engine: spark; "
            "docs/spark.md)."),
    Section("snapshots", "The S3 snapshot store.", required=True, default_empty=False),
    Section("scoring", "How serving scores a user (docs/evaluation.md); written into each "
                       "snapshot."),
    Section("serving", "The serving pods.", validations=(
        {"rule": "!has(self.ingestTokenSecret) || !has(self.ingress) || "
                 "!has(self.ingress.allowAnonymousWrites) || !self.ingress.allowAnonymousWrites",
         "message": "ingress.allowAnonymousWrites cannot be true while ingestTokenSecret is set"},
    )),
    # has(): the API server also checks the rule against the default {}.
    Section("serving.autoscaling", "HorizontalPodAutoscaler of the serving Deployment.",
            validations=({"rule": "!has(self.minReplicas) || !has(self.maxReplicas) || "
                                  "self.maxReplicas >= self.minReplicas",
                          "message": "maxReplicas must be >= minReplicas"},)),
    Section("serving.ingress", "Ingress to the serving Service.",
            validations=({"rule": "!has(self.tlsSecret) || has(self.host)",
                          "message": "host is required when tlsSecret is set"},)),
)
