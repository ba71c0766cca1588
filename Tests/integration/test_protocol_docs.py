"""The machine-readable protocol documents stay whole: every reference resolves, every frame and
endpoint is described."""
import json
from pathlib import Path
import yaml
from conftest import ROOT

PROTO = ROOT / "Protocol"


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def resolve(doc, ref):
    path, _, frag = ref.partition("#")
    target = json.loads((PROTO / path).read_text()) if path else doc
    for part in filter(None, frag.split("/")):
        target = target[part]
    return target


def test_asyncapi_describes_every_frame_schema():
    doc = yaml.safe_load((PROTO / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("3.")
    for r in refs(doc):
        assert resolve(doc, r) is not None, r
    named = {r for r in refs(doc) if r.startswith("./schemas/")}
    on_disk = {f"./schemas/{p.parent.name}/{p.name}" for p in (PROTO / "schemas").glob("*/*.json")}
    assert named == on_disk


def test_openapi_covers_the_rest_endpoints():
    doc = yaml.safe_load((PROTO / "openapi.yaml").read_text())
    assert doc["openapi"].startswith("3.1")
    for r in refs(doc):
        assert resolve(doc, r) is not None, r
    assert set(doc["paths"]) >= {"/healthz", "/metrics", "/v1/tokens", "/v1/users/{userId}/orders/{orderId}",
                                 "/v1/users/{userId}/orders/last", "/v1/conversations/{id}", "/v1/ws"}


def test_schemas_are_up_to_date_with_their_generator(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("gen", PROTO / "schemas" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for side, frames in (("client", gen.CLIENT), ("server", gen.SERVER)):
        for name, schema in frames.items():
            on_disk = json.loads((PROTO / "schemas" / side / f"{name}.json").read_text())
            for k, v in schema.items():
                if k != "title":
                    assert on_disk[k] == v, (side, name, k)
