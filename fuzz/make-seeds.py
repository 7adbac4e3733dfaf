#!/usr/bin/env python3
"""Writes the small seed corpora under fuzz/seeds/TARGET/ and the dictionaries under fuzz/dict/.
Seeds are committed; rerun this only to change them. Byte order: the host's (little-endian)."""
import gzip
import pathlib
import re
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
SEEDS = FUZZ / "seeds"


def write(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / name).write_bytes(data)


# --- ingest_body: mode byte (1 gzip as sent, 2 ndjson, 4 gzipped here) + body ---------------
EVENT = '{"tenant_id":"acme","endpoint":"/v1/users/42?x=1","status_code":503,"latency_ms":12.5,"timestamp":1700000000000}'
EVENT2 = '{"tenant_id":"t\\u00e9nant","endpoint":"/v1/orders/0b1e7f3a-9c2d-4e5f-8a6b-1c2d3e4f5a6b","status_code":200,"latency_ms":3,"timestamp":"2023-11-14T22:13:20.5+01:00"}'
BAD = '{"tenant_id":"","endpoint":"/","status_code":99,"latency_ms":-1,"timestamp":1e300}'
write("ingest_body", "object", b"\x00" + EVENT.encode())
write("ingest_body", "array", b"\x00[" + ",\n ".join([EVENT, EVENT2, BAD]).encode() + b"]")
write("ingest_body", "ndjson", b"\x02" + "\n".join([EVENT, BAD, "", EVENT2, "not json"]).encode() + b"\n")
write("ingest_body", "concatenated", b"\x00\xef\xbb\xbf" + (EVENT + " " + EVENT2 + "{").encode())
write("ingest_body", "pretty", b"\x00{\n  \"tenant_id\": \"a\",\n  \"endpoint\": \"/\",\n  \"status_code\": 500,\n  \"latency_ms\": 1.0\n}\n")
write("ingest_body", "gzip-here", b"\x06" + "\n".join([EVENT, EVENT2]).encode())
write("ingest_body", "gzip-sent", b"\x01" + gzip.compress(("[" + EVENT + "," + EVENT2 + "]").encode(), mtime=0))
write("ingest_body", "gzip-two-members", b"\x03" + gzip.compress(EVENT.encode(), mtime=0) + gzip.compress(("\n" + EVENT2).encode(), mtime=0))

# --- agent_nginx: mode byte (bits 0-1 format, 3 = first line is the format; >>2 timestamp; >>4 unit)
COMBINED_TENANT = [
    r'127.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /v1/users/42?x=1 HTTP/1.1" 503 12 "-" "curl/8.0" 0.125 "acme"',
    r'1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "Mozilla \x22quoted\x22 5.0" 1.5 "t\xC3\xA9nant one"',
    r'1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /b HTTP/1.1" 404 5 "-" "say \"hi\" \\" 0.01 "acme"',
    r'1.2.3.4 - - [29/Feb/2024:23:59:59 -0130] "\x16\x03\x01" 400 150 "-" "-" 0.001 "-"',
]
write("agent_nginx", "combined", b"\x00" + "\n".join(COMBINED_TENANT).encode())
write("agent_nginx", "combined-backslash-utf8", b"\x10" + 'a - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "\\é \\\xef\xbf\xbd" 1 "\\é"'.encode())
write("agent_nginx", "combined-invalid-byte", b"\x20" + b'a - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "\\\xff" 1 "acme"')
write("agent_nginx", "upstream", b"\x01" + rb'10.0.0.1 [01/Jan/1970:00:00:01 +0000] "GET /x HTTP/1.1" 502 "0.125, 0.250 : 0.0625" tenant with spaces')
write("agent_nginx", "msec", b"\x06" + rb'1700000000.123 acme 200 0.5 "POST /p HTTP/2.0" 2023-11-14T22:13:20+00:00 \"/p\"')
write("agent_nginx", "custom-format", b"\x03" + "\n".join([
    '$remote_addr "${http_x_tenant_id}" $status [$time_local] $request_time "$request"',
    r'::1 "beta" 201 [10/Oct/2023:15:55:36 +0200] 0.000 "PUT /q HTTP/1.1"',
    r'::1 "-" 200 [10/Oct/2023:15:55:36 +0200] 0.000 "GET /healthz HTTP/1.1"',
]).encode())
write("agent_nginx", "combined-word", b"\x03combined\n" + COMBINED_TENANT[0].encode())
# dims from $http_user_agent and $remote_user: a value, `-`, an escape, a control character
write("agent_nginx", "combined-dims", b"\x00" + "\n".join([
    r'1.2.3.4 - bob [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 503 5 "-" "curl/8.0" 0.5 "acme"',
    r'1.2.3.4 - \x07 [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "ua \xC3\xA9 \x22x\x22" 0.5 "acme"',
]).encode())

# --- agent_json: mode byte (bit 0 renamed fields; >>1 unit) + lines -----------------------------
write("agent_json", "canonical", b"\x00" + "\n".join([
    EVENT, EVENT2,
    '{"tenant_id":"acme","endpoint":"/","status_code":200,"latency_ms":3,"timestamp":1700000000123}\r',
    '{"tenant_id":["a"],"endpoint":"/","status_code":200,"latency_ms":1}',
    '["not", "an", "object"]', '{"tenant_id":', '',
]).encode())
write("agent_json", "renamed", b"\x03" + "\n".join([
    '{"org":42,"path":"/p","status":"404","duration":"0.250, 0.1 : 2","ts":"2024-05-05T10:00:00+02:00","extra":[1]}',
    '{"org":"","path":"/healthz","status":200,"duration":0.001}',
    '{"org":"x","path":"/","status":200.5,"duration":1e400}',
]).encode())
# dims (`region` canonical; `plan`, `geo` renamed): text, numbers, booleans, null, nested, control
write("agent_json", "dims", b"\x00" + "\n".join([
    '{"tenant_id":"a","endpoint":"/","status_code":503,"latency_ms":1,"region":"eu-west"}',
    '{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1,"region":2.5e3}',
    '{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1,"region":"eu\\u0007west"}',
    '{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1,"region":{"a":[null]}}',
]).encode())
write("agent_json", "dims-renamed", b"\x01" + "\n".join([
    '{"org":"a","path":"/","status":503,"duration":1,"plan":true,"geo":"' + "x" * 129 + '"}',
    '{"org":"a","path":"/","status":503,"duration":1,"plan":null,"geo":""}',
]).encode())

# --- config: sentineld.toml and sentinel-agent.toml texts ------------------------------------
write("config", "sentineld-example", (ROOT / "sentineld.toml.example").read_bytes())
write("config", "agent-example", (ROOT / "sentinel-agent.toml.example").read_bytes())
for doc in sorted((ROOT / "docs").glob("*.md")):
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S)):
        write("config", f"{doc.stem}-{i}", block)

# --- netlink: sequence (4 bytes) + one datagram of netlink messages -------------------------
NLMSG_ERROR, NLMSG_DONE, RTM_NEWQDISC, RTM_NEWROUTE = 2, 3, 36, 24


def nla(kind, payload):
    out = struct.pack("=HH", 4 + len(payload), kind) + payload
    return out + b"\0" * (-len(out) % 4)


def message(kind, seq, payload, flags=2):
    out = struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, 0) + payload
    return out + b"\0" * (-len(out) % 4)


def qdisc(ifindex, handle, parent, kind, options):
    head = struct.pack("=BxxxiIII", 0, ifindex, handle, parent, 1)
    return head + nla(1, kind + b"\0") + nla(2, options)


# tbf: nest of PARMS (tc_ratespec + limit, buffer, mtu), RTAB (256 u32), BURST
parms = struct.pack("=BBHhHI", 3, 1, 0, -1, 0, 125000) + b"\0" * 12 + struct.pack("=III", 65536, 2000000, 0)
tbf = nla(1, parms) + nla(2, struct.pack("=256I", *range(256))) + nla(6, struct.pack("=I", 16384))
# netem: tc_netem_qopt (24 bytes), then CORR, LATENCY64, JITTER64
netem = struct.pack("=6I", 1562500, 1000, 42949672, 0, 0, 156250) + nla(1, b"\0" * 12) \
    + nla(10, struct.pack("=q", 100_000_000)) + nla(11, struct.pack("=q", 10_000_000))
SEQ = struct.pack("=I", 7)
write("netlink", "qdisc-dump", SEQ + message(RTM_NEWQDISC, 7, qdisc(2, 0x5E1D0000, 0xFFFFFFFF, b"tbf", tbf))
      + message(RTM_NEWQDISC, 7, qdisc(3, 0x5E1D0000, 0xFFFFFFFF, b"netem", netem))
      + message(RTM_NEWQDISC, 6, qdisc(1, 0, 0xFFFFFFFF, b"noqueue", b""))
      + message(NLMSG_DONE, 7, struct.pack("=i", 0)))
route = struct.pack("=BBBBBBBBI", 2, 0, 0, 0, 254, 3, 0, 1, 0) + nla(15, struct.pack("=I", 254)) + nla(4, struct.pack("=i", 2))
write("netlink", "route-dump", SEQ + message(RTM_NEWROUTE, 7, route) + message(RTM_NEWROUTE, 7, route[:12]) + message(NLMSG_DONE, 7, b""))
write("netlink", "ack", SEQ + message(NLMSG_ERROR, 7, struct.pack("=i", 0) + b"\0" * 16))
write("netlink", "refusal-extack", SEQ + message(NLMSG_ERROR, 7, struct.pack("=i", -2) + b"\0" * 16
      + nla(1, b"Specified qdisc kind is unknown\0") + nla(2, struct.pack("=I", 36))))

# --- dictionaries -----------------------------------------------------------------------------
DICT = FUZZ / "dict"
DICT.mkdir(exist_ok=True)


def dictionary(name, tokens):
    lines = []
    for token in sorted(set(tokens)):
        escaped = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02X" % ord(c) for c in token)
        lines.append(f'"{escaped}"')
    (DICT / name).write_text("\n".join(lines) + "\n")


json_tokens = ['{', '}', '[', ']', ':', ',', '"', '\\"', '\\\\', '\\u0000', '\\ud800', 'true', 'false', 'null',
               '-0', '1e308', '1e-7', '0.5', '9223372036854775807', '18446744073709551616', '100', '599',
               '"tenant_id"', '"endpoint"', '"status_code"', '"latency_ms"', '"timestamp"',
               '"org"', '"path"', '"status"', '"duration"', '"ts"', '"2023-11-14T22:13:20Z"',
               '"1970-01-01T00:00:00.000000001+23:59"', '\n', '\r\n', '\xef\xbb\xbf']
dictionary("json.dict", json_tokens)
dictionary("nginx.dict", ['$', '${', '}', '\\', '\\x', '\\x22', '\\"', '"', '[', ']', ' - ', '-', '/', ':',
                          '+0000', '-0700', 'Jan', 'Feb', 'Oct', '10/Oct/2000:13:55:36 -0700', 'combined',
                          '$remote_addr', '$time_local', '$request', '$status', '$request_time', '$msec',
                          '$http_x_tenant_id', '$time_iso8601', '$upstream_response_time', '$uri',
                          'GET / HTTP/1.1', '0.125, 0.250 : 0.0625', '\n', '\xef\xbf\xbd', '\xc3\xa9'])
toml_tokens = ['[', ']', '[[', ']]', '=', '"', "'", '"""', '{', '}', ',', '.', '#', '\n', 'true', 'false',
               '0o', '0x', '1e3', 'inf', 'nan', '1979-05-27T07:32:00Z']
for text in [(ROOT / "sentineld.toml.example").read_text(), (ROOT / "sentinel-agent.toml.example").read_text()] \
        + [d.read_text() for d in (ROOT / "docs").glob("*.md")]:
    toml_tokens += re.findall(r"^\s*\[\[?([a-z_.]+)\]\]?", text, re.M)
    toml_tokens += re.findall(r"^\s*#?\s*([a-z_]+)\s*=", text, re.M)
    toml_tokens += re.findall(r'\bkind\s*=\s*"([a-z_0-9]+)"', text)
    toml_tokens += re.findall(r'"(\d+(?:\.\d+)?(?:ms|s|m|h|d|KiB|MiB|GiB|mbit/s|kbit/s))"', text)
dictionary("toml.dict", [t for t in toml_tokens if len(t) <= 40])
dictionary("netlink.dict", ["\x10\x00\x00\x00", "\x02\x00", "\x03\x00", "\x18\x00", "\x24\x00", "\x07\x00\x00\x00",
                            "\xff\xff\xff\xff", "\x00\x00\x00\x80", "tbf\x00", "netem\x00", "\x01\x00", "\x02\x00",
                            "\x0a\x00", "\x0f\x00", "\x04\x00", "\xfe"])
