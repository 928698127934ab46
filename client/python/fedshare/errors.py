"""Typed errors built from the node's gRPC status and its google.rpc.ErrorInfo."""

import grpc

from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


class FedshareError(Exception):
    """A call the node answered with an error.

    code is the grpc.StatusCode; message the node's message; rule, agreement,
    field and retry_after_seconds come from the ErrorInfo when the node sent
    one (None otherwise); org is the partner that refused, for refusals read
    from a federated answer's coverage.
    """

    def __init__(self, code, message, info=None, org=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.org = org
        meta = dict(info.metadata) if info is not None else {}
        self.rule = info.reason if info is not None and info.reason else None
        self.agreement = meta.get("agreement")
        self.field = meta.get("field")
        retry = meta.get("retry_after_seconds")
        self.retry_after_seconds = int(retry) if retry else None
        self.metadata = meta

    def __str__(self):
        parts = [self.message]
        if self.rule:
            parts.append("rule " + self.rule)
        if self.agreement:
            parts.append("agreement " + self.agreement)
        return "; ".join(parts)


class Refused(FedshareError):
    """The question was refused: rule and agreement say by what."""


class ResourceExhausted(Refused):
    """A budget or limit refused the question; retry_after_seconds says when to ask again."""


class InvalidQuestion(FedshareError):
    """The question is not valid: line and column point at a syntax error (1-based)."""

    def __init__(self, code, message, info=None, org=None):
        super().__init__(code, message, info, org)
        line = self.metadata.get("line")
        column = self.metadata.get("column")
        self.line = int(line) if line else None
        self.column = int(column) if column else None


class Unavailable(FedshareError):
    """The node (or every partner) could not be reached in time."""


class IncompleteCoverage(FedshareError):
    """Fewer partners answered than min_coverage; result holds what did answer."""

    def __init__(self, message, result):
        super().__init__(grpc.StatusCode.OK, message)
        self.result = result


def _error_info(rpc_error):
    for key, value in rpc_error.trailing_metadata() or ():
        if key != _DETAILS_KEY:
            continue
        status = status_pb2.Status()
        status.ParseFromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info
    return None


_CLASS_FOR_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidQuestion,
    grpc.StatusCode.PERMISSION_DENIED: Refused,
    grpc.StatusCode.FAILED_PRECONDITION: Refused,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def from_rpc_error(rpc_error):
    """The typed error for a grpc.RpcError raised by a call."""
    code = rpc_error.code()
    cls = _CLASS_FOR_CODE.get(code, FedshareError)
    return cls(code, rpc_error.details() or code.name, _error_info(rpc_error))


def from_coverage(coverage):
    """The typed error for a partner that did not answer (a Coverage)."""
    message = f"{coverage.org_id} {coverage.state}: {coverage.reason}"
    if coverage.state == "refused":
        code = grpc.StatusCode.PERMISSION_DENIED
        limited = coverage.rule in ("rate-limit", "repeat-limit") or "budget" in (
            coverage.rule or "") or "retry_after_seconds" in coverage.refusal_metadata
        if limited:
            return ResourceExhausted(grpc.StatusCode.RESOURCE_EXHAUSTED, message,
                                     coverage.refusal, coverage.org_id)
        return Refused(code, message, coverage.refusal, coverage.org_id)
    return Unavailable(grpc.StatusCode.UNAVAILABLE, message, None, coverage.org_id)
