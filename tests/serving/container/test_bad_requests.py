"""Client mistakes over HTTP: each gets its 4xx with field-level problems, and no reply repeats a value."""

from __future__ import annotations

import json

import pytest

from tests.serving.container.client import READMISSION_ROW, Client, problems_of
from tests.serving.container.conftest import TEST_MAX_BODY, TEST_MAX_ROWS


def row(**changes: object) -> dict[str, object]:
    return {**READMISSION_ROW, **changes}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"age": 71,', "not valid JSON: Expecting"),
        ("{'age': 71}", "not valid JSON"),
        ('{"age": NaN}', "NaN is not valid JSON"),
        ('{"age": Infinity}', "Infinity is not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"age": 1' + "0" * 5000 + "}", "too long"),
        ("42", "expected a JSON object"),
        ('"a string"', "expected a JSON object"),
        ("[]", "no records"),
        ('{"instances": {}}', '"instances" must be a list'),
        ('{"instances": [], "extra": 1}', "no other top-level key"),
    ],
)
def test_malformed_json_is_400(client: Client, body: str, fragment: str) -> None:
    reply = client.post(body)
    assert reply.status in (400, 413), reply.raw  # 100k brackets exceed the test's body limit on some builds
    if reply.status == 400:
        assert fragment in reply.json["problems"][0]["problem"]


def test_invalid_utf8_is_400(client: Client) -> None:
    reply = client.post(b'{"sex": "\xff"}')
    assert reply.status == 400
    assert "UTF-8" in reply.json["problems"][0]["problem"]


def test_duplicate_keys_are_ambiguous(client: Client) -> None:
    reply = client.post('{"age": 71, "age": 45}')
    assert reply.status == 400
    assert problems_of(reply) == [(None, "age", "duplicate field in a JSON object: which value to score is ambiguous")]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("age", "71", "wrong type: expected an integer, got a string"),
        ("age", True, "wrong type: expected an integer, got a boolean"),
        ("age", 71.5, "wrong type: expected an integer, got a number with a fraction"),
        ("age", [71], "wrong type: expected an integer, got an array"),
        ("creatinine", {"v": 1}, "wrong type: expected a number, got an object"),
        ("sex", 1, "wrong type: expected a string (one of the categories), got a number"),
        ("age", 17, "out of range: allowed [18, 90] years"),
        ("prior_admissions_12m", 10**400, "out of range: allowed [0, 50] count"),
        ("sex", "female", "unknown category: allowed F, M"),
        ("payer", "medicare", "unknown category: allowed Medicare, Medicaid, Commercial, Self-pay"),
    ],
)
def test_wrong_type_range_or_category_names_row_and_field(
    client: Client, field: str, value: object, problem: str
) -> None:
    reply = client.post_json([READMISSION_ROW, row(**{field: value})])
    assert reply.status == 400
    assert problems_of(reply) == [(1, field, problem)]
    assert reply.json["problem_count"] == 1


def test_a_number_literal_beyond_float_range_is_not_finite(client: Client) -> None:
    reply = client.post(json.dumps(row()).replace('"sodium": 137.0', '"sodium": 1e400'))
    assert reply.status == 400
    assert problems_of(reply) == [(0, "sodium", "not a finite number")]


def test_missing_and_extra_fields(client: Client) -> None:
    record = row(mrn="MRN00424242", favourite_colour="teal", readmitted_30d=1)
    del record["charlson_index"]
    reply = client.post_json(record)
    assert reply.status == 400
    not_input = "not a model input: the contract declares it but the model never uses it; do not send it"
    assert sorted(problems_of(reply), key=str) == sorted(
        [
            (0, "charlson_index", "missing: required field"),
            (0, "mrn", not_input),
            (0, "readmitted_30d", not_input),
            (0, "favourite_colour", "unknown field: not in the feature contract"),
        ],
        key=str,
    )


def test_a_field_name_that_looks_like_an_identifier_is_withheld(client: Client) -> None:
    reply = client.post_json(row(**{"MRN12345678": 1, "Jane Doe": 2}))
    assert reply.status == 400
    assert [p[1] for p in problems_of(reply)] == ["[withheld]", "[withheld]"]
    assert b"12345678" not in reply.raw and b"Jane" not in reply.raw


def test_no_reply_repeats_a_submitted_value(client: Client) -> None:
    marker = "Zebulon-Quartermaine-7731"
    bodies = [row(sex=marker), row(age=marker), row(payer=marker, extra_field=marker), [row(), marker]]
    for body in bodies:
        reply = client.post_json(body)
        assert reply.status == 400
        assert marker.encode() not in reply.raw
    for raw in (f'{{"age": "{marker}",', f"age,sex\n{marker},F\n"):
        reply = client.post(raw, "text/csv" if "\n" in raw else "application/json")
        assert reply.status == 400
        assert marker.encode() not in reply.raw


def test_not_a_record_in_a_list(client: Client) -> None:
    reply = client.post_json([READMISSION_ROW, 5, "x"])
    assert reply.status == 400
    assert [(p[0], p[1]) for p in problems_of(reply)] == [(1, None), (2, None)]


def test_problem_list_is_capped_but_counted(client: Client) -> None:
    reply = client.post_json([{"age": 5}] * 10)  # each: out of range, and 14 fields missing
    assert reply.status == 400
    assert reply.json["problem_count"] == 150
    assert len(reply.json["problems"]) == 100


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("71,F,Medicare\n70,M,Medicaid\n", "a CSV row without a header holds the 15 feature columns"),
        ("age,sex\n", "no records to score"),
        ("", "the body is empty"),
    ],
)
def test_csv_without_header_or_rows(client: Client, body: str, problem: str) -> None:
    reply = client.post(body, "text/csv")
    assert reply.status == 400
    assert problem in reply.json["problems"][0]["problem"]


def test_csv_header_and_cell_problems(client: Client) -> None:
    header = ",".join([*READMISSION_ROW, "age", "mrn"])
    cells = ",".join("" if v is None else str(v) for v in READMISSION_ROW.values())
    reply = client.post(f"{header}\n{cells},71,MRN1\n", "text/csv")
    assert reply.status == 400
    assert set(problems_of(reply)) == {
        (None, "age", "duplicate column in the header"),
        (None, "mrn", "not a model input: the contract declares it but the model never uses it; do not send it"),
    }
    good_header = ",".join(READMISSION_ROW)
    bad_rows = "\n".join([cells, cells + ",1", cells.replace("71", "abc", 1), cells.replace("SNF", "Jail")])
    reply = client.post(f"{good_header}\n{bad_rows}\n", "text/csv")
    assert problems_of(reply) == [
        (1, None, "the row has 16 cells, the header has 15"),
        (2, "age", "wrong type: expected an integer, got text that is not a number"),
        (3, "discharge_disposition", "unknown category: allowed Home, Home health, SNF, Rehab, AMA, Hospice"),
    ]


def test_empty_body_is_400(client: Client) -> None:
    reply = client.post(b"")
    assert reply.status == 400
    assert problems_of(reply) == [(None, None, "the body is empty")]


def test_body_over_the_limit_is_413_without_reading_it(client: Client) -> None:
    reply = client.post(b"[" + b" " * TEST_MAX_BODY + b"]")
    assert reply.status == 413
    assert reply.headers.get("connection") == "close"
    assert f"at most {TEST_MAX_BODY}" in reply.json["problems"][0]["problem"]


def test_too_many_rows_is_413(client: Client) -> None:
    reply = client.post(json.dumps([{}] * (TEST_MAX_ROWS + 1)))
    assert reply.status == 413
    assert f"at most {TEST_MAX_ROWS}" in reply.json["problems"][0]["problem"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "text/csv; header=maybe",
        "multipart/form-data; boundary=x",
    ],
)
def test_unsupported_content_type_is_415(client: Client, content_type: str | None) -> None:
    reply = client.post(json.dumps(READMISSION_ROW), content_type)
    assert reply.status == 415
    assert reply.json["problem_count"] == 1


def test_unacceptable_accept_is_406(client: Client) -> None:
    assert client.post(json.dumps(READMISSION_ROW), Accept="text/html").status == 406
    assert client.post(json.dumps(READMISSION_ROW), Accept="application/json;q=0, text/csv;q=0").status == 406
    assert client.post(json.dumps(READMISSION_ROW), Accept="text/html, application/json;q=0.5").status == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/invocations", 405),
        ("PUT", "/invocations", 405),
        ("POST", "/ping", 405),
        ("DELETE", "/ping", 405),
        ("BREW", "/invocations", 405),
        ("GET", "/", 404),
        ("POST", "/predict", 404),
        ("GET", "/ping?x=1", 200),
    ],
)
def test_methods_and_paths(client: Client, method: str, path: str, status: int) -> None:
    reply = client.request(method, path)
    assert reply.status == status
    if status == 405:
        assert reply.headers["allow"] in ("GET", "POST")


def test_no_content_length_is_411(client: Client) -> None:
    reply = client.raw(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 411 ")
    chunked = client.raw(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    assert chunked.startswith(b"HTTP/1.1 411 ")


def test_garbage_request_line_is_400_and_echoes_nothing(client: Client) -> None:
    reply = client.raw(b"Zebulon Quartermaine MRN1234567\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"Zebulon" not in reply and b"MRN" not in reply


def test_short_body_is_400(client: Client) -> None:
    reply = client.raw(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{}",
        half_close=True,
    )
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"the body ended before Content-Length bytes arrived" in reply
