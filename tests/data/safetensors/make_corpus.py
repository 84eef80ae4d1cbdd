#!/usr/bin/env python3
"""Writes the safetensors format corpus: one small file per rule of the format, valid and not.

    python3 tests/data/safetensors/make_corpus.py [OUTDIR]     (default: this folder)

Each file is named for the rule it probes (written_by_attnscope_*.safetensors are not made
here: they are `attnscope-cli init ... --dtype f32|bf16` outputs, the writer's own files). The verdict of the format's own library on every
file is recorded in reference.tsv by reference_verdicts.py; test_safetensors asserts that
Attnscope's format check agrees with it file by file. Standard library only.
"""
import json
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

F32_6 = struct.pack("<6f", *range(6))       # a F32 [2, 3]
F16_4 = struct.pack("<4e", 1.0, 2.0, 3.0, 4.0)  # a F16 [4]


def entries(a_off=(0, 24), b_off=(24, 32), a_dtype="F32", a_shape=(2, 3)):
    return {
        "a": {"dtype": a_dtype, "shape": list(a_shape), "data_offsets": list(a_off)},
        "b": {"dtype": "F16", "shape": [4], "data_offsets": list(b_off)},
    }


def header_of(obj, meta={"note": "corpus"}):
    h = dict(obj)
    if meta is not None:
        h = {"__metadata__": meta, **h}
    return json.dumps(h, separators=(",", ":")).encode()


def file_of(header, data=F32_6 + F16_4, length=None):
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def raw_header(text):
    return text.encode() if isinstance(text, str) else text


cases = {}
base = header_of(entries())
cases["valid"] = file_of(base)
cases["valid_space_padding"] = file_of(base + b" " * 7)
cases["valid_no_metadata"] = file_of(header_of(entries(), meta=None))
cases["valid_empty_header"] = file_of(b"{}", data=b"")
cases["valid_json_order_not_offset_order"] = file_of(
    json.dumps({"b": entries()["b"], "a": entries()["a"]}).encode())
cases["valid_zero_element_tensor"] = file_of(header_of({
    **entries(), "z": {"dtype": "F32", "shape": [0, 5], "data_offsets": [32, 32]}}))
cases["valid_scalar"] = file_of(header_of({
    "s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}), data=F32_6[:4])
cases["valid_escaped_nul_in_metadata"] = file_of(
    header_of(entries(), meta={"note": "a\u0000b"}))
cases["valid_other_dtype_i8"] = file_of(header_of({
    "q": {"dtype": "I8", "shape": [8], "data_offsets": [0, 8]}}), data=bytes(range(8)))
cases["valid_other_dtype_f64"] = file_of(header_of({
    "d": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}), data=struct.pack("<d", 1.5))
cases["valid_whitespace_inside_json"] = file_of(json.dumps(
    {"__metadata__": {"k": "v"}, **entries()}, indent=2).encode())

cases["pad_nul"] = file_of(base + b"\0" * 7)
cases["pad_tab"] = file_of(base + b"\t" * 3)
cases["pad_newline"] = file_of(base + b"\n")
cases["pad_cr"] = file_of(base + b"\r")
cases["leading_space"] = file_of(b" " + base)
cases["leading_bom"] = file_of(b"\xef\xbb\xbf" + base)
cases["trailing_garbage"] = file_of(base + b"x")
cases["two_objects"] = file_of(base + b"{}")
cases["header_is_array"] = file_of(b"[]", data=b"")
cases["header_is_string"] = file_of(b'"{}"', data=b"")
cases["header_empty"] = file_of(b"", data=b"")
cases["header_not_utf8"] = file_of(header_of(entries(), meta={"note": "\x00"}).replace(
    b"\\u0000", b"\xff\xfe"))
cases["header_length_past_end"] = file_of(base, length=len(base) + 100)
cases["header_length_over_limit"] = file_of(base, length=100_000_001)
cases["shorter_than_8_bytes"] = b"\x02\x00\x00"

cases["data_truncated"] = file_of(base, data=(F32_6 + F16_4)[:-2])
cases["data_trailing_bytes"] = file_of(base, data=F32_6 + F16_4 + b"\0\0\0\0")
cases["offsets_gap"] = file_of(header_of(entries(b_off=(28, 36))), data=F32_6 + b"\0" * 4 + F16_4)
cases["offsets_overlap"] = file_of(header_of(entries(b_off=(20, 28))), data=F32_6[:20] + F16_4)
cases["offsets_not_from_zero"] = file_of(header_of(entries(a_off=(4, 28), b_off=(28, 36))),
                                         data=b"\0" * 4 + F32_6 + F16_4)
cases["offsets_end_before_begin"] = file_of(header_of(entries(b_off=(32, 24))))
cases["offsets_three_numbers"] = file_of(raw_header(json.dumps({
    "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24, 24]}})), data=F32_6)
cases["offsets_float"] = file_of(raw_header(json.dumps({
    "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0.0, 24.0]}})), data=F32_6)
cases["offsets_negative"] = file_of(raw_header(json.dumps({
    "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [-24, 0]}})), data=F32_6)
cases["shape_span_mismatch"] = file_of(header_of(entries(a_shape=(2, 2))))
cases["shape_negative"] = file_of(header_of(entries(a_shape=(-2, -3))))
cases["shape_float"] = file_of(raw_header(json.dumps({
    "a": {"dtype": "F32", "shape": [2.0, 3], "data_offsets": [0, 24]}})), data=F32_6)
cases["shape_overflow"] = file_of(raw_header(json.dumps({
    "a": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 24]}})), data=F32_6)
cases["shape_not_array"] = file_of(raw_header(json.dumps({
    "a": {"dtype": "F32", "shape": 6, "data_offsets": [0, 24]}})), data=F32_6)
cases["dtype_unknown"] = file_of(header_of(entries(a_dtype="F31")))
cases["dtype_lowercase"] = file_of(header_of(entries(a_dtype="f32")))
cases["dtype_not_string"] = file_of(raw_header(json.dumps({
    "a": {"dtype": 32, "shape": [2, 3], "data_offsets": [0, 24]}})), data=F32_6)
cases["entry_missing_offsets"] = file_of(raw_header(json.dumps({
    "a": {"dtype": "F32", "shape": [2, 3]}})), data=b"")
cases["entry_extra_key"] = file_of(raw_header(json.dumps({
    "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24], "x": 1}})), data=F32_6)
cases["entry_not_object"] = file_of(raw_header(json.dumps({"a": [0, 24]})), data=F32_6)
cases["duplicate_tensor_name"] = file_of(
    b'{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},'
    b'"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}', data=F32_6)
cases["metadata_value_number"] = file_of(header_of(entries(), meta={"note": 1}))
cases["metadata_value_object"] = file_of(header_of(entries(), meta={"note": {"x": "y"}}))
cases["metadata_not_object"] = file_of(header_of(entries(), meta="note"))
cases["metadata_null"] = file_of(header_of(entries(), meta=None) .replace(b"{", b'{"__metadata__":null,', 1))
cases["duplicate_entry_field"] = file_of(
    b'{"a":{"dtype":"F16","dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}', data=F32_6)
cases["valid_duplicate_metadata_key"] = file_of(
    b'{"__metadata__":{"k":"1","k":"2"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}',
    data=F32_6)
cases["metadata_lone_surrogate"] = file_of(
    b'{"__metadata__":{"k":"\\ud800"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}',
    data=F32_6)
cases["valid_f4_whole_bytes"] = file_of(header_of({
    "f": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}), data=b"\x12\x34")
cases["f4_half_byte"] = file_of(header_of({
    "f": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}), data=b"\x12\x34")
cases["valid_shape_huge_times_zero"] = file_of(header_of({
    "z": {"dtype": "F32", "shape": [2**40, 0], "data_offsets": [0, 0]}}), data=b"")
cases["offsets_huge"] = file_of(header_of({
    "a": {"dtype": "U8", "shape": [2**64 - 1], "data_offsets": [0, 2**64 - 1]}}), data=b"")
cases["number_too_big_for_u64"] = file_of(raw_header(
    '{"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,0]}}'), data=b"")
cases["valid_tensor_named_empty"] = file_of(header_of({
    "": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}), data=F32_6[:4])
cases["header_nested_deep_metadata"] = file_of(
    b'{"__metadata__":' + b'[' * 200 + b']' * 200 + b'}', data=b"")
# serde_json, under the reference, stops at a nesting depth of 128 (the root object counts).
for depth in (127, 128, 129):
    inner = b"[" * (depth - 2) + b"]" * (depth - 2)
    cases[f"nesting_{depth}_in_ignored_key"] = file_of(
        b'{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24],"x":' + inner + b'}}',
        data=F32_6)

os.makedirs(OUT, exist_ok=True)
for name, blob in sorted(cases.items()):
    tmp = os.path.join(OUT, name + ".safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, os.path.join(OUT, name + ".safetensors"))
print(f"wrote {len(cases)} files to {OUT}")
