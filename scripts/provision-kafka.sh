#!/usr/bin/env bash
# Resolve an Apache Kafka broker (KRaft) from Maven Central into $STREAMREC_CACHE/kafka-<v>/libs.
# Kafka 4's log4j jars are not in its pom, so slf4j-simple is the logger.
source "$(dirname "$0")/lib.sh"
need java "install a Java 17+ JDK"
need mvn "install Apache Maven 3.8+"

KAFKA_DIR="$STREAMREC_CACHE/kafka-$KAFKA_VERSION"
lock kafka
cached kafka "$KAFKA_DIR/.done" "$KAFKA_DIR"
mkdir -p "$KAFKA_DIR"
cat > "$KAFKA_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.streamrec</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
resolve() {
  rm -rf "$KAFKA_DIR/libs"
  mvn -B -q -f "$KAFKA_DIR/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/libs"
  ls "$KAFKA_DIR"/libs/kafka_2.13-*.jar >/dev/null
}
timed "kafka $KAFKA_VERSION: resolve broker jars from Maven Central" resolve
touch "$KAFKA_DIR/.done"
echo "$KAFKA_DIR"
