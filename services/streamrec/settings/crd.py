"""The RecommenderService CRD: a fixed frame (names, printer columns, status) plus ``spec``,
whose schema is built from the settings table's rows and sections.

As dask-kubernetes renders its CRDs from one template, ``render.py`` writes this one document
to ``k8s/crd.yaml`` and ``helm/streamrec/crds/``: neither is kept by hand.
"""

from __future__ import annotations

from typing import Any

import yaml

from .rows import SECTIONS, SETTINGS
from .table import Section, Setting

__all__ = ["crd", "field_schema", "spec_schema"]

_FRAME = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: recommenderservices.streamrec.io
  labels:
    app.kubernetes.io/name: streamrec
    app.kubernetes.io/component: crd
spec:
  group: streamrec.io
  scope: Namespaced
  names:
    kind: RecommenderService
    listKind: RecommenderServiceList
    plural: recommenderservices
    singular: recommenderservice
    shortNames: [recsvc]
    categories: [streamrec]
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources:
        status: {}
      additionalPrinterColumns:
        - name: Ready
          type: string
          jsonPath: .status.conditions[?(@.type=="Ready")].status
        - name: Snapshot
          type: string
          description: Latest snapshot version published by the trainer
          jsonPath: .status.snapshotVersion
        - name: Replicas
          type: integer
          description: Ready serving replicas
          jsonPath: .status.servingReplicas
        - name: Groups
          type: integer
          description: Serving groups (users sharded by Kafka partition)
          jsonPath: .status.servingGroups
        - name: Training
          type: string
          description: False while the trainer's fits fail (see the Training condition)
          jsonPath: .status.conditions[?(@.type=="Training")].status
        - name: Phase
          type: string
          priority: 1
          jsonPath: .status.phase
        - name: Age
          type: date
          jsonPath: .metadata.creationTimestamp
      schema:
        openAPIV3Schema:
          type: object
          description: A real-time recommendation service fed by a Kafka topic.
          required: [spec]
          properties:
            apiVersion:
              type: string
            kind:
              type: string
            metadata:
              type: object
            spec: null
            status:
              type: object
              properties:
                observedGeneration:
                  type: integer
                phase:
                  type: string
                  enum: [Progressing, Ready, Degraded, Failed]
                servingReplicas:
                  type: integer
                servingGroups:
                  type: integer
                  description: Serving groups (spec.serving.groups) the replicas are split into.
                snapshotVersion:
                  type: string
                ingestTokenSecret:
                  type: string
                  description: >-
                    The Secret (key token) whose bearer token the write routes require;
                    absent when writes are open.
                conditions:
                  type: array
                  x-kubernetes-list-type: map
                  x-kubernetes-list-map-keys: [type]
                  items:
                    type: object
                    required: [type, status]
                    properties:
                      type:
                        type: string
                      status:
                        type: string
                        enum: ["True", "False", "Unknown"]
                      reason:
                        type: string
                      message:
                        type: string
                      lastTransitionTime:
                        type: string
                        format: date-time
"""


def field_schema(row: Setting) -> dict[str, Any]:
    """The OpenAPI schema of one CR field: its kind's, its description (naming the env var
    the operator fills from it) and its default."""
    out = row.kinds[1].schema()
    default = row.cr_default_value
    text = row.doc
    if default is None and row.default_text:
        text += f" The services default to {row.default_text}."
    out["description"] = text + (f" ({row.env_name})" if row.env_name and row.cr_env else "")
    if default is not None:
        out["default"] = default
    return out


def _section_schema(section: Section, rows: list[Setting]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    if section.doc:
        out["description"] = section.doc
    required = [r.cr_key for r in rows if r.required]
    if required:
        out["required"] = required
    if section.default_empty:
        out["default"] = {}
    if section.validations:
        out["x-kubernetes-validations"] = [dict(v) for v in section.validations]
    out["properties"] = {r.cr_key: field_schema(r) for r in rows}
    return out


def spec_schema() -> dict[str, Any]:
    """``spec``: one object per section, its rows' fields in the table's order."""
    top: dict[str, Any] = {}
    for section in SECTIONS:
        rows = [r for r in SETTINGS if r.cr is not None and r.cr_section == section.path]
        parent, _, key = section.path.rpartition(".")
        into = top if not parent else _find(top, parent)["properties"]
        into[key] = _section_schema(section, rows)
    for row in SETTINGS:  # fields of spec itself (spec.experiments)
        if row.cr is not None and row.cr_section == "":
            top[row.cr_key] = field_schema(row)
    required = [s.path for s in SECTIONS if s.required and "." not in s.path]
    return {"type": "object", "required": required, "properties": top}


def _find(top: dict[str, Any], path: str) -> dict[str, Any]:
    node: dict[str, Any] = {"properties": top}
    for part in path.split("."):
        node = node["properties"][part]
    return node


def crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition document."""
    doc: dict[str, Any] = yaml.safe_load(_FRAME)
    version = doc["spec"]["versions"][0]
    version["schema"]["openAPIV3Schema"]["properties"]["spec"] = spec_schema()
    return doc
