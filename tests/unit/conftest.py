"""Unit-test plumbing: the collection on sys.path, and real local servers to test plugins against."""

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# `ansible_collections.aistack.fleet` is importable from the checkout's `.collections` link
# (made by `make venv`) or, when the checkout itself sits in ansible_collections/aistack/fleet
# (as in ansible-test's tree), from the directory above that.
for _candidate in (REPO / ".collections", REPO.parent.parent.parent):
    if (_candidate / "ansible_collections" / "aistack" / "fleet" / "galaxy.yml").is_file():
        if str(_candidate) not in sys.path:
            sys.path.insert(0, str(_candidate))
        break


def debian_tool(command, package):
    """The path of a Debian tool the suite runs against (make deps installs it). Missing, the
    test is skipped, saying why, or fails in CI, where nothing may be skipped."""
    path = shutil.which(command)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{command} is not installed: make deps installs it (apt-get install {package})")
        pytest.skip(f"{command} is not installed (apt-get install {package})")
    return path


def free_port():
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- a scripted HTTP(S) server ---------------------------------------------------------------


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 drops connections when many probes arrive at once
    daemon_threads = True


class ScriptedServer:
    """An HTTP server on 127.0.0.1 whose n-th answer (from 1) is `script(n)`: (status, document).

    The document is sent as JSON, or as it is when it is bytes.
    """

    def __init__(self, script, tls=None):
        self.script = script
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with owner._lock:
                    owner.requests += 1
                    number = owner.requests
                status, document = owner.script(number)
                body = document if isinstance(document, bytes) else json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted_server():
    """Start ScriptedServer(script, tls=None) instances that are stopped after the test."""
    servers = []

    def start(script, tls=None):
        servers.append(ScriptedServer(script, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


# --- the example app under a real uvicorn ----------------------------------------------------


@pytest.fixture(scope="session")
def example_app():
    """Start the example app (examples/app) under uvicorn: start(**settings) -> base URL."""
    sys.path.insert(0, str(REPO / "examples" / "app" / "src"))
    uvicorn = pytest.importorskip("uvicorn")
    from aistack_example_app.main import create_app  # noqa: PLC0415  (only when a test asks for it)
    from aistack_example_app.settings import Settings  # noqa: PLC0415

    running = []

    def start(**settings):
        sock = socket.create_server(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(Settings(**settings)), log_config=None, access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        for _attempt in range(200):
            if server.started:
                return f"http://127.0.0.1:{sock.getsockname()[1]}"
            thread.join(0.05)
        pytest.fail("the example app did not start under uvicorn")

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(10)
        sock.close()


# --- throwaway TLS material ------------------------------------------------------------------


class Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    def __init__(self, directory, name):
        from cryptography import x509  # noqa: PLC0415  (only when a test asks for TLS)
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

        now = datetime.datetime.now(datetime.UTC)

        def issue(subject_cn, issuer_cert, issuer_key, *, ca=False, usage=None, sans=()):
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer_cert.subject if issuer_cert else subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key((issuer_key or key).public_key()),
                    critical=False,
                )
            )
            if ca:
                builder = builder.add_extension(
                    x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
                )
            if usage:
                builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            if sans:
                builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
            cert = builder.sign(issuer_key or key, hashes.SHA256())
            return cert, key

        def write(stem, cert, key):
            cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            key_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            return str(cert_path), str(key_path)

        ca_cert, ca_key = issue(f"{name} CA", None, None, ca=True)
        server = issue(
            "127.0.0.1",
            ca_cert,
            ca_key,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
        )
        client = issue("health-gate probe", ca_cert, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        self.ca = write("ca", ca_cert, ca_key)[0]
        self.server_cert, self.server_key = write("server", *server)
        self.client_cert, self.client_key = write("client", *client)

    def server_context(self, require_client_cert=False):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """Two unrelated throwaway PKIs: `pki.good` signs the servers, `pki.other` is the wrong CA."""

    class Both:
        good = Pki(tmp_path_factory.mktemp("pki-good"), "good")
        other = Pki(tmp_path_factory.mktemp("pki-other"), "other")

    return Both
