"""A client of one fedshare node's local listener, as an analyst."""

import os
import time
from typing import Iterable, Optional

import grpc

from fedshare import errors
from fedshare.result import Result
from fedshare.v1 import federation_pb2, federation_pb2_grpc


def _read(directory, name):
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise FileNotFoundError(
            f"identity {directory}: cannot read {name} ({e.strerror}); an identity directory "
            "holds ca.pem, cert.pem and key.pem, as `fedshare certs issue` writes them") from e


class Client:
    """Asks aggregate questions through your organisation's node.

    node: the node's local listener, "HOST:PORT" (default 127.0.0.1:7444).
    identity: a directory with ca.pem, cert.pem and key.pem (an analyst or
    operator certificate, as the fedshare CLI's --identity); default
    $FEDSHARE_IDENTITY. server_name: the name the node's certificate is
    checked against (default "localhost" for a loopback address, else the
    host of `node`). timeout: seconds per call.
    """

    def __init__(self, node: str = "127.0.0.1:7444", identity: Optional[str] = None, *,
                 server_name: Optional[str] = None, timeout: float = 60.0):
        identity = identity or os.environ.get("FEDSHARE_IDENTITY")
        if not identity:
            raise ValueError("no identity: pass identity=DIR (holding ca.pem, cert.pem, key.pem) "
                             "or set FEDSHARE_IDENTITY")
        identity = os.path.expanduser(identity)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(identity, "ca.pem"),
            private_key=_read(identity, "key.pem"),
            certificate_chain=_read(identity, "cert.pem"))
        host = node.rsplit(":", 1)[0].strip("[]")
        if server_name is None and host in ("127.0.0.1", "localhost", "::1"):
            server_name = "localhost"
        # A node's replies (a part of a federated answer) may pass gRPC's
        # default of 4 MiB, up to the 16 MiB a node sends in one message.
        options = [("grpc.max_receive_message_length", 16 << 20)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self._channel = grpc.secure_channel(node, credentials, options=options)
        self._federation = federation_pb2_grpc.FederationServiceStub(self._channel)
        self._timeout = timeout
        self.node = node

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def query(self, sql: str, peers: Optional[Iterable[str]] = None, *,
              group: Optional[str] = None, purpose: Optional[str] = None,
              deadline_ms: int = 0, min_coverage: Optional[int] = None,
              query_id: Optional[str] = None) -> Result:
        """Asks `sql` of partners through the node and returns the combined answer.

        peers: org ids to ask; group: a configured group; neither asks every
        configured partner. purpose, when given, is appended as the question's
        PURPOSE clause (the SQL must then not have one). min_coverage: raise
        IncompleteCoverage (holding the result) when fewer partners answer.
        query_id is echoed in the answer (default "q-" and the time in ms, as
        the CLI chooses).

        Raises InvalidQuestion (with line and column for a syntax error),
        Refused / ResourceExhausted (with rule and agreement) when the node
        refuses or when no partner answered and one refused, Unavailable when
        the node or every partner could not be reached.
        """
        if purpose is not None:
            sql = f"{sql.rstrip().rstrip(';')} PURPOSE '{purpose.replace(chr(39), chr(39) * 2)}'"
        request = federation_pb2.FederatedAggregateRequest(sql=sql, deadline_ms=deadline_ms)
        request.query.query_id = query_id or f"q-{int(time.time() * 1000)}"
        if peers is not None:
            request.peers.extend(peers)
        elif group is not None:
            request.group = group
        else:
            request.all_peers = True
        try:
            response = self._ask(request)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None
        result = Result(response)
        if result.coverage and result.answered == 0:
            missing = [c for c in result.coverage if c.state == "refused"] or result.coverage
            raise errors.from_coverage(missing[0])
        if min_coverage is not None and result.answered < min_coverage:
            raise errors.IncompleteCoverage(
                f"{result.answered} of {len(result.coverage)} partners answered, fewer than "
                f"min_coverage {min_coverage}", result)
        return result

    def _ask(self, request):
        """FederatedAggregateStream's answer: its parts and then the result,
        merged (repeated fields append), which is what FederatedAggregate
        returns but without a limit on the number of partners."""
        response = federation_pb2.FederatedAggregateResponse()
        for event in self._federation.FederatedAggregateStream(request, timeout=self._timeout):
            kind = event.WhichOneof("kind")
            if kind == "result_part":
                response.MergeFrom(event.result_part)
            elif kind == "result":
                response.MergeFrom(event.result)
                return response
        raise errors.FedshareError(grpc.StatusCode.INTERNAL,
                                   "the node ended the answer stream without a result")
