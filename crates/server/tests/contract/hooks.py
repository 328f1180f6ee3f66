"""Schemathesis hooks for the contract test (`tests/contract.rs`)."""

import re
import uuid

import schemathesis

# The document's rule for Idempotency-Key (`IDEMPOTENCY_KEY_PATTERN` in src/api/extract.rs).
WELL_FORMED_KEY = re.compile(r'^(?:[!#-~]{1,255}|"[!#-~]{1,255}")$')


@schemathesis.hook
def before_call(context, case, kwargs):
    # A client makes a new key for each new request. Schemathesis draws keys from a small space
    # and sends the same one with other bodies, which the node rightly answers 422
    # (idempotency-key-reused). Well-formed keys are made unique; malformed ones are kept, so
    # that their refusal is still tested. Negative cases are left alone: an edit makes
    # Schemathesis judge the case again, and it would then send the header the case leaves out.
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    headers = case.headers or {}
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and WELL_FORMED_KEY.match(value):
            headers[name] = str(uuid.uuid4())


# DICOM files (POST /api/v1/imaging/instances) go as bytes, as any binary body.
schemathesis.serializer.alias("application/dicom", "application/octet-stream")
# So do patients' documents (POST /api/v1/patients/{id}/documents).
schemathesis.serializer.alias("application/pdf", "application/octet-stream")
