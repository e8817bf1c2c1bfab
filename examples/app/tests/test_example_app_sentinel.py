"""Readiness of Redis through Sentinel (redis+sentinel://, rediss+sentinel://) and over TLS.

Every server is a real redis-server from Debian started on 127.0.0.1 for the test: a master
and a replica with ACL users (the app's user may only PING and ROLE), and a real Sentinel
(``redis-server sentinel.conf --sentinel``) on which the app's user, with the same name and
password, may only ask for a master's address. The TLS certificates are made by the test:
a CA and host certificates carrying 127.0.0.1 as an IP SAN, like the fleet's.
"""

import contextlib
import datetime
import io
import ipaddress
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aistack_example_app.readiness import (
    CheckFailed,
    Credentials,
    _read_reply,
    _tls_context,
    check_redis_master,
    parse_sentinel_url,
)

APP_PASSWORD = "app-pass-7Qz"  # noqa: S105  (the test servers' password)
# The users of a master or replica: nobody without a password, the app with the least it
# needs, Sentinel with what it needs to monitor (docs: "Redis Sentinel, ACL"), replication.
SERVER_USERS = [
    ["default", "off"],
    ["app", "on", f">{APP_PASSWORD}", "-@all", "+ping", "+role"],
    ["sentinel", "on", ">sentinel-pass", "&__sentinel__:hello", "-@all"]
    + ["+client", "+subscribe", "+publish", "+ping", "+info", "+multi", "+slaveof", "+config", "+exec", "+role"],
    ["replication", "on", ">replication-pass", "-@all", "+psync", "+replconf", "+ping"],
]


def _user_args():
    return [arg for user in SERVER_USERS for arg in ["--user", *user]]


def _sentinel_config(master_name, master_port, tls=None):
    lines = [
        "bind 127.0.0.1",
        "user default off",
        f"user app on >{APP_PASSWORD} -@all +sentinel|get-master-addr-by-name",
        f"sentinel monitor {master_name} 127.0.0.1 {master_port} 1",
        f"sentinel auth-user {master_name} sentinel",
        f"sentinel auth-pass {master_name} sentinel-pass",
        # No failover while a test runs, whatever the monitored server says.
        f"sentinel down-after-milliseconds {master_name} 600000",
    ]
    if tls:
        lines += ["port 0", "tls-port {port}", "tls-replication yes", "tls-auth-clients optional"]
        lines += [f"tls-cert-file {tls['cert']}", f"tls-key-file {tls['key']}", f"tls-ca-cert-file {tls['ca']}"]
    else:
        lines += ["port {port}"]
    return "\n".join(lines)


def _tls_args(tls):
    files = ["--tls-cert-file", tls["cert"], "--tls-key-file", tls["key"], "--tls-ca-cert-file", tls["ca"]]
    return ["--port", "0", "--tls-port", "{port}", "--tls-auth-clients", "optional", "--tls-replication", "yes", *files]


@pytest.fixture
def start_master(redis_servers):
    def start(tls=None):
        return redis_servers(["--port", "{port}", *_user_args(), *(_tls_args(tls) if tls else [])])

    return start


@pytest.fixture
def start_sentinel(redis_servers):
    def start(master_name, master_port, tls=None):
        return redis_servers([], config=_sentinel_config(master_name, master_port, tls))

    return start


def _url(sentinel_ports, name="mymaster", password=APP_PASSWORD, scheme="redis+sentinel"):
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel_ports)
    return f"{scheme}://app:{password}@{hosts}/{name}"


def _redis_check(make_client, expect, **env):
    response = make_client(**env).get("/ready")
    assert response.status_code == expect, response.text
    assert APP_PASSWORD not in response.text
    return response.json()["checks"]["redis"]


def _certificate(subject, key, issuer, issuer_key, *, ca, ips=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]), critical=False
        ).add_extension(
            # Redis uses a host's certificate as its client certificate too (Sentinel, replication).
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and two host certificates signed by it: ``good`` names 127.0.0.1, ``wrong_ip`` names
    only 192.0.2.1; {"ca", "good": {"cert", "key", "ca"}, "wrong_ip": {...}} as file paths."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files = {"ca": str(ca_file)}
    for name, ips in [("good", ["127.0.0.1", "::1"]), ("wrong_ip", ["192.0.2.1"])]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(name, key, "test CA", ca_key, ca=False, ips=ips)
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        files[name] = {"cert": str(folder / f"{name}.pem"), "key": str(folder / f"{name}.key"), "ca": str(ca_file)}
    return files


# --- the URL ---------------------------------------------------------------------------------


def test_sentinel_url_parts():
    target = parse_sentinel_url("rediss+sentinel://app:p%40ss:w@10.0.0.1:26380,[fd00::2],sentinel3/my%20master/0")
    assert target.tls is True
    assert target.sentinels == [("10.0.0.1", 26380), ("fd00::2", 26379), ("sentinel3", 26379)]
    assert target.master_name == "my master"
    assert target.credentials == Credentials("app", "p@ss:w")
    plain = parse_sentinel_url("redis+sentinel://:only-pass@h1/m")
    assert (plain.tls, plain.credentials) == (False, Credentials(None, "only-pass"))
    assert parse_sentinel_url("redis+sentinel://h1:1,h2:2/m").credentials == Credentials(None, None)
    assert parse_sentinel_url("REDIS+SENTINEL://app@h1/m").credentials == Credentials("app", None)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://app:hunter2@h1:26379,h2:26379",
        "redis+sentinel://app:hunter2@h1:26379,h2:x/m",
        "redis+sentinel://app:hun/ter2@h1/m",  # an unescaped / in the password
    ],
)
def test_bad_sentinel_url_is_not_ready_without_the_password(make_client, url):
    response = make_client(APP_REDIS_URL=url).get("/ready")
    assert response.status_code == 503
    assert "APP_REDIS_URL" in response.json()["checks"]["redis"]["error"]
    assert "hunter2" not in response.text
    assert "hun" not in response.text


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n", ["127.0.0.1", "6379"]),
        (b"*-1\r\n", None),
        (b"$-1\r\n", None),
        (b"*3\r\n$6\r\nmaster\r\n:42\r\n*0\r\n", ["master", 42, []]),
        (b"-NOPERM no\r\n", "NOPERM no"),
    ],
)
def test_resp_replies(data, reply):
    assert _read_reply(io.BytesIO(data), "here") == reply


@pytest.mark.parametrize("data", [b"", b"HTTP/1.1 400 Bad Request\r\n", b"$5\r\nab\r\n", b"*x\r\n"])
def test_what_is_not_resp_fails_the_check(data):
    with pytest.raises(CheckFailed, match="^here (closed the connection|answered something that is not RESP)$"):
        _read_reply(io.BytesIO(data), "here")


# --- through Sentinel, plain TCP -------------------------------------------------------------


def test_ready_through_sentinel(make_client, start_master, start_sentinel, closed_port):
    master = start_master()
    sentinel = start_sentinel("mymaster", master)
    # The first Sentinel is down: the next one is asked.
    check = _redis_check(make_client, 200, APP_REDIS_URL=_url([closed_port, sentinel]))
    assert check["ok"] is True
    assert check["master"] == f"127.0.0.1:{master}"
    assert check["sentinel"] == f"127.0.0.1:{sentinel}"


def test_not_ready_through_sentinel_with_a_wrong_password(make_client, start_master, start_sentinel):
    sentinel = start_sentinel("mymaster", start_master())
    check = _redis_check(make_client, 503, APP_REDIS_URL=_url([sentinel], password="not-the-pass"))  # noqa: S106
    assert f"sentinel at 127.0.0.1:{sentinel} refused the credentials" in check["error"]
    assert "not-the-pass" not in check["error"]


def test_not_ready_when_the_sentinel_does_not_know_the_master(make_client, start_master, start_sentinel):
    sentinel = start_sentinel("mymaster", start_master())
    check = _redis_check(make_client, 503, APP_REDIS_URL=_url([sentinel], name="other"))
    assert f"sentinel at 127.0.0.1:{sentinel} does not monitor a master named 'other'" in check["error"]


def test_not_ready_when_no_sentinel_answers(make_client):
    with contextlib.ExitStack() as stack:  # three distinct ports, released: nothing listens there
        socks = [stack.enter_context(socket.socket()) for _number in range(3)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        ports = [sock.getsockname()[1] for sock in socks]
    check = _redis_check(make_client, 503, APP_REDIS_URL=_url(ports))
    assert check["error"].startswith("redis sentinel: no sentinel named the master 'mymaster' (")
    for port in ports:
        assert f"sentinel at 127.0.0.1:{port}: Connection refused" in check["error"]


def test_not_ready_when_the_named_master_is_unreachable(make_client, start_sentinel, closed_port):
    sentinel = start_sentinel("mymaster", closed_port)
    check = _redis_check(make_client, 503, APP_REDIS_URL=_url([sentinel]))
    assert check["error"].startswith(f"redis master at 127.0.0.1:{closed_port}: ")
    assert f"(named for 'mymaster' by sentinel at 127.0.0.1:{sentinel})" in check["error"]


def test_a_replica_named_as_master_is_refused(make_client, redis_servers, start_master, start_sentinel):
    """Sentinel monitors a replica's address as a master (it says so until a failover it cannot
    make, here never); the replica's own ROLE gives it away."""
    master = start_master()
    replica = redis_servers(
        ["--port", "{port}", *_user_args(), "--replicaof", "127.0.0.1", str(master)]
        + ["--masteruser", "replication", "--masterauth", "replication-pass"]
    )
    sentinel = start_sentinel("mymaster", replica)
    check = _redis_check(make_client, 503, APP_REDIS_URL=_url([sentinel]))
    assert check["error"] == (
        f"redis master at 127.0.0.1:{replica} is not a master: ROLE says a replica"
        f" (named for 'mymaster' by sentinel at 127.0.0.1:{sentinel})"
    )
    # The same check on the two addresses directly.
    app = Credentials("app", APP_PASSWORD)
    check_redis_master("127.0.0.1", master, 2.0, None, app)
    with pytest.raises(CheckFailed, match="ROLE says a replica"):
        check_redis_master("127.0.0.1", replica, 2.0, None, app)
    with pytest.raises(CheckFailed, match="refused the credentials"):
        check_redis_master("127.0.0.1", master, 2.0, None, Credentials("app", "wrong"))


def test_an_error_answer_to_role_is_reported(start_sentinel, start_master):
    """A Sentinel's own address, where the app's user may not run ROLE."""
    sentinel = start_sentinel("mymaster", start_master())
    with pytest.raises(CheckFailed, match="answered ROLE with the error .NOPERM"):
        check_redis_master("127.0.0.1", sentinel, 2.0, None, Credentials("app", APP_PASSWORD))


# --- TLS ---------------------------------------------------------------------------------------


def test_ready_over_tls_without_sentinel(make_client, start_master, tls_files):
    master = start_master(tls=tls_files["good"])
    url = f"rediss://app:{APP_PASSWORD}@127.0.0.1:{master}"
    assert _redis_check(make_client, 200, APP_REDIS_URL=url, APP_TLS_CA_FILE=tls_files["ca"])["ok"] is True


def test_ready_through_sentinel_over_tls(make_client, start_master, start_sentinel, tls_files):
    master = start_master(tls=tls_files["good"])
    sentinel = start_sentinel("mymaster", master, tls=tls_files["good"])
    url = _url([sentinel], scheme="rediss+sentinel")
    check = _redis_check(make_client, 200, APP_REDIS_URL=url, APP_TLS_CA_FILE=tls_files["ca"])
    assert check["master"] == f"127.0.0.1:{master}"
    # Not the system CAs: the test CA signed these certificates.
    check = _redis_check(make_client, 503, APP_REDIS_URL=url)
    assert f"sentinel at 127.0.0.1:{sentinel}:" in check["error"]
    assert "certificate verify failed" in check["error"]
    # Plain RESP to a TLS-only Sentinel gets no answer it understands.
    assert _redis_check(make_client, 503, APP_REDIS_URL=_url([sentinel]), APP_TLS_CA_FILE=tls_files["ca"])


def test_master_certificate_must_name_the_address_sentinel_gave(make_client, start_master, start_sentinel, tls_files):
    """Sentinel checks the chain only, the app also the IP address in the master's certificate."""
    master = start_master(tls=tls_files["wrong_ip"])
    sentinel = start_sentinel("mymaster", master, tls=tls_files["good"])
    url = _url([sentinel], scheme="rediss+sentinel")
    check = _redis_check(make_client, 503, APP_REDIS_URL=url, APP_TLS_CA_FILE=tls_files["ca"])
    assert check["error"].startswith(f"redis master at 127.0.0.1:{master}: ")
    assert "IP address mismatch" in check["error"]
    with pytest.raises(CheckFailed, match="IP address mismatch"):
        check_redis_master("127.0.0.1", master, 2.0, _tls_context(tls_files["ca"]), Credentials("app", APP_PASSWORD))
    ssl_context = _tls_context(tls_files["ca"])
    assert ssl_context.check_hostname and ssl_context.verify_mode == ssl.CERT_REQUIRED
