#!/usr/bin/env python3
"""Parses Prometheus text exposition (format 0.0.4) from stdin with the reference Python client's parser
(prometheus_client.parser) and prints every sample as one JSON object per line:
{"family": ..., "type": ..., "name": ..., "labels": {...}, "value": ...}. Used by the Rust tests so that
metric values are read by a parser nobody in this repository wrote."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({
            "family": family.name,
            "type": family.type,
            "name": sample.name,
            "labels": sample.labels,
            "value": sample.value,
        }))
