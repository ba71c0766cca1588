#!/usr/bin/env python3
"""Writes one JSON Schema (draft 2020-12) per protocol v1 frame into this folder.

The schemas are the normative shapes of Protocol/SPEC.md §3; the integration tests validate every
frame the server sends against them. Run `python3 generate.py` after changing a shape here.
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = "https://parley.example/protocol/v1/"

CONV_ID = {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
REF = {"type": "string", "maxLength": 64}
SEQ = {"type": "integer", "minimum": 1}
TS = {"type": "integer", "description": "Unix milliseconds"}
PERSON = {"type": "object", "required": ["id", "role", "name"], "additionalProperties": False,
          "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 128},
                         "role": {"enum": ["customer", "agent"]}, "name": {"type": "string"}}}
ORDER = {"oneOf": [{"type": "null"}, {"type": "object", "required": ["id", "placedAt", "status", "total", "currency", "items"],
                                      "properties": {"id": {"type": "string"}, "placedAt": {"type": "string"},
                                                     "status": {"type": "string"}, "total": {"type": ["number", "string"]},
                                                     "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                                     "items": {"type": "array"}, "metadata": {"type": "object"}}}]}
VIEW = {"type": "object", "required": ["id", "status", "customer", "agent", "order", "lastSeq", "readSeq"], "additionalProperties": False,
        "properties": {"id": CONV_ID, "status": {"enum": ["queued", "assigned", "resolved"]}, "customer": PERSON,
                       "agent": {"oneOf": [{"type": "null"}, PERSON]}, "order": ORDER,
                       "lastSeq": {"type": "integer", "minimum": 0}, "readSeq": {"type": "integer", "minimum": 0}}}
CODES = ["invalid_request", "unauthorized", "forbidden", "not_found", "conflict", "too_large", "rate_limited", "unavailable", "internal"]


def frame(type_, required=(), props=None, extra_ok=False, ref=True):
    p = {"type": {"const": type_}}
    if ref:
        p["ref"] = REF
    p.update(props or {})
    return {"type": "object", "required": ["type", *required], "properties": p, "additionalProperties": extra_ok}


def sequenced(type_, required, props):
    return frame(type_, ["conversation", "seq", "ts", *required], {"conversation": CONV_ID, "seq": SEQ, "ts": TS, **props}, ref=False)


CLIENT = {
    "hello": frame("hello", ["token"], {"token": {"type": "string", "minLength": 1},
                                       "resume": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}, "maxProperties": 1000}}),
    "conversation.open": frame("conversation.open", [], {"order": {"oneOf": [{"type": "null"}, {"type": "string", "minLength": 1, "maxLength": 128}]}}),
    "message.send": frame("message.send", ["conversation", "clientMsgId", "text"], {
        "conversation": CONV_ID, "clientMsgId": {"type": "string", "minLength": 1, "maxLength": 64},
        "text": {"type": "string", "minLength": 1, "description": "1 byte to 16 KiB of UTF-8"}}),
    "typing": frame("typing", ["conversation", "active"], {"conversation": CONV_ID, "active": {"type": "boolean"}}),
    "read": frame("read", ["conversation", "seq"], {"conversation": CONV_ID, "seq": SEQ}),
    "history": frame("history", ["conversation"], {"conversation": CONV_ID, "before": {"type": "integer", "minimum": 0},
                                                  "limit": {"type": "integer", "minimum": 1, "description": "default 50, clamped to 1000"}}),
    "csat": frame("csat", ["conversation", "score"], {"conversation": CONV_ID, "score": {"type": "integer", "minimum": 1, "maximum": 5},
                                                     "comment": {"type": ["string", "null"], "description": "at most 2 KiB"}}),
    "agent.status": frame("agent.status", ["status"], {"status": {"enum": ["available", "away", "offline"]}}),
    "conversation.claim": frame("conversation.claim", ["conversation"], {"conversation": CONV_ID}),
    "conversation.transfer": frame("conversation.transfer", ["conversation"], {"conversation": CONV_ID,
                                                                            "to": {"oneOf": [{"type": "null"}, {"type": "string", "minLength": 1}]}}),
    "conversation.resolve": frame("conversation.resolve", ["conversation"], {"conversation": CONV_ID}),
}

SERVER = {
    "welcome": frame("welcome", ["session", "epoch", "user", "conversations"], {
        "session": {"type": "string"}, "epoch": {"type": "string"}, "user": PERSON, "conversations": {"type": "array", "items": VIEW}}, ref=False),
    "conversation.opened": frame("conversation.opened", ["conversation"], {"conversation": VIEW}),
    "ack": frame("ack", [], {"conversation": CONV_ID, "clientMsgId": {"type": "string"}, "seq": SEQ, "ts": TS}),
    "error": frame("error", ["code", "message"], {"code": {"enum": CODES}, "message": {"type": "string"}}),
    "history.reply": {**frame("history", ["conversation", "events"], {"conversation": CONV_ID, "events": {"type": "array", "items": {"type": "object", "required": ["type", "conversation", "seq", "ts"]}}}),
                      "title": "history (reply)"},
    "typing.event": {**frame("typing", ["conversation", "user", "active"], {"conversation": CONV_ID, "user": PERSON, "active": {"type": "boolean"}}, ref=False),
                     "title": "typing (to others)"},
    "read.event": {**frame("read", ["conversation", "user", "seq"], {"conversation": CONV_ID, "user": PERSON, "seq": SEQ}, ref=False),
                   "title": "read (to others)"},
    "presence": frame("presence", ["user", "status"], {
        "user": {"type": "object", "required": ["id", "role"], "additionalProperties": False,
                 "properties": {"id": {"type": "string"}, "role": {"enum": ["customer", "agent"]}}},
        "status": {"enum": ["online", "offline", "available", "away"]}}, ref=False),
    "queue": frame("queue", ["waiting"], {"waiting": {"type": "array", "items": {
        "type": "object", "required": ["conversation", "customer", "since"], "additionalProperties": False,
        "properties": {"conversation": CONV_ID, "customer": PERSON, "since": TS}}}}, ref=False),
    "resume_failed": frame("resume_failed", ["conversation", "reason"], {
        "conversation": {"type": "string"}, "reason": {"enum": ["not_found", "forbidden", "beyond_end"]}}, ref=False),
    "conversation.created": sequenced("conversation.created", ["customer", "order"], {"customer": PERSON, "order": ORDER}),
    "message": sequenced("message", ["from", "text", "clientMsgId"], {"from": PERSON, "text": {"type": "string", "minLength": 1}, "clientMsgId": {"type": "string"}}),
    "order.attached": sequenced("order.attached", ["order"], {"order": ORDER}),
    "conversation.assigned": sequenced("conversation.assigned", ["agent"], {"agent": PERSON}),
    "conversation.transferred": sequenced("conversation.transferred", ["from", "to"], {"from": PERSON, "to": {"oneOf": [{"type": "null"}, PERSON]}}),
    "conversation.resolved": sequenced("conversation.resolved", ["by"], {"by": PERSON}),
    "csat.event": {**sequenced("csat", ["from", "score", "comment"], {"from": PERSON, "score": {"type": "integer", "minimum": 1, "maximum": 5},
                                                                     "comment": {"type": ["string", "null"]}}), "title": "csat (event)"},
}

if __name__ == "__main__":
    for side, frames in (("client", CLIENT), ("server", SERVER)):
        d = HERE / side
        d.mkdir(exist_ok=True)
        for name, schema in frames.items():
            doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{BASE}{side}/{name}.json",
                   "title": schema.pop("title", name), **schema}
            (d / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{len(CLIENT)} client and {len(SERVER)} server schemas")
