#!/usr/bin/env bash
# Fetch the schemas that the deployment tests validate against, into
# $STREAMREC_CACHE/schemas-<versions>/ (prints that directory on its last stdout line):
#   strimzi/*.yaml   the Strimzi CRDs (Kafka, KafkaNodePool, KafkaTopic), generated exactly as
#                    Strimzi's own build does: its crd-generator run over its api jar, both
#                    from Maven Central (the jars carry no CRD YAML). Needs Java 21+.
#   skaffold/*.json  skaffold's JSON schemas, from the skaffold Go module (docs-v2/content/en/schemas).
# Used by tests/integration/test_operator.py (server-side apply of k8s/strimzi-kafka.yaml) and
# tests/unit/test_manifests.py-style checks of skaffold.yaml. Idempotent.
source "$(dirname "$0")/lib.sh"
need mvn "install Maven 3.9+"
need go "install Go 1.24+ (https://go.dev/dl)"

STRIMZI_VERSION="${STRIMZI_VERSION:-1.2.0}"
DIR="$STREAMREC_CACHE/schemas-strimzi$STRIMZI_VERSION-skaffold$SKAFFOLD_VERSION"
lock schemas
cached schemas "$DIR/.done" "$DIR"

# A Java runtime that runs the crd-generator (class file 65 = Java 21).
find_java() {
  local candidate major
  for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    major=$("$candidate" -XshowSettings:properties -version 2>&1 \
      | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
    if [[ -n "$major" && "$major" -ge 21 ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

strimzi_crds() {
  local java work
  java=$(find_java) || die "Strimzi's crd-generator needs Java 21+ (set JAVA_HOME)"
  work="$DIR/.strimzi-build"
  rm -rf "$work" && mkdir -p "$work" "$DIR/strimzi"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streamrec</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$STRIMZI_VERSION</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>$STRIMZI_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  (cd "$work" && mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory=lib) >&2
  local model=io.strimzi.api.kafka.model
  "$java" -cp "$work/lib/*" io.strimzi.crdgenerator.CrdGenerator --yaml --crd-api-version v1 \
    "$model.kafka.Kafka=$DIR/strimzi/kafkas.kafka.strimzi.io.yaml" \
    "$model.nodepool.KafkaNodePool=$DIR/strimzi/kafkanodepools.kafka.strimzi.io.yaml" \
    "$model.topic.KafkaTopic=$DIR/strimzi/kafkatopics.kafka.strimzi.io.yaml" 2>&1 \
    | grep -v '^SLF4J' >&2 || true
  for f in kafkas kafkanodepools kafkatopics; do
    [[ -s "$DIR/strimzi/$f.kafka.strimzi.io.yaml" ]] || die "crd-generator wrote no $f CRD"
  done
  rm -rf "$work"
}

skaffold_schemas() {
  local dir
  dir=$(go mod download -json "github.com/GoogleContainerTools/skaffold/v2@v$SKAFFOLD_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -d "$dir/docs-v2/content/en/schemas" ]] || die "no schemas in skaffold v$SKAFFOLD_VERSION"
  mkdir -p "$DIR/skaffold"
  cp "$dir"/docs-v2/content/en/schemas/*.json "$DIR/skaffold/"
  chmod -R u+w "$DIR/skaffold"
}

mkdir -p "$DIR"
timed "Strimzi $STRIMZI_VERSION CRDs: generate from Maven Central" strimzi_crds
timed "skaffold $SKAFFOLD_VERSION schemas: from the Go module proxy" skaffold_schemas
touch "$DIR/.done"
echo "$DIR"
