"""A local cluster's replicas are reachable from this machine's private namespace only."""

import socket
import subprocess
import sys
import textwrap

import psutil
import pytest

from components.local_cluster import PrivateNetwork, free_ports
from pipeline.config import ConfigError, load_config
from pipeline.service import checks

# Listens on every interface, as TF's gRPC servers do, and says when it is ready.
LISTENER = textwrap.dedent("""
    import socket, sys
    server = socket.socket(socket.AF_INET6)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(('::', int(sys.argv[1])))
    server.listen()
    print('listening', flush=True)
    while True:
      server.accept()[0].close()
""")
CONNECT = (
  'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5); '
  'print("connected")'
)


def _non_loopback_addresses():
  return [
    a.address
    for addresses in psutil.net_if_addrs().values()
    for a in addresses
    if a.family == socket.AF_INET and not a.address.startswith('127.')
  ]


def _accepts(host, port) -> bool:
  try:
    socket.create_connection((host, port), timeout=2).close()
    return True
  except OSError:
    return False


def test_a_server_on_every_interface_is_reachable_only_inside():
  (port,) = free_ports(1)
  with PrivateNetwork() as network:
    listener = subprocess.Popen(
      network.command([sys.executable, '-c', LISTENER, str(port)]),
      stdout=subprocess.PIPE,
      text=True,
    )
    try:
      assert listener.stdout.readline().strip() == 'listening'
      inside = subprocess.run(
        network.command([sys.executable, '-c', CONNECT, str(port)]),
        capture_output=True,
        text=True,
        timeout=30,
      )
      assert inside.stdout.strip() == 'connected', inside.stderr
      assert not _accepts('127.0.0.1', port)
      addresses = _non_loopback_addresses()
      assert addresses
      for address in addresses:
        assert not _accepts(address, port), address
    finally:
      listener.kill()
      listener.wait()


def test_without_the_namespace_the_same_server_is_exposed():
  """The control: what the namespace prevents does happen without it."""
  addresses = _non_loopback_addresses()
  assert addresses, 'this machine has no non-loopback IPv4 address to try'
  (port,) = free_ports(1)
  listener = subprocess.Popen(
    [sys.executable, '-c', LISTENER, str(port)], stdout=subprocess.PIPE, text=True
  )
  try:
    assert listener.stdout.readline().strip() == 'listening'
    assert _accepts(addresses[0], port)
  finally:
    listener.kill()
    listener.wait()


def test_a_local_cluster_without_a_private_network_needs_consent(monkeypatch, tmp_path):
  monkeypatch.setenv('PATH', str(tmp_path))  # no unshare, no nsenter
  with pytest.raises(ConfigError, match=r"'trainer\.expose_cluster'.*not found"):
    checks.check_private_network()
  config = load_config(overrides=['trainer.cluster=local', 'trainer.expose_cluster=true'])
  assert config.cluster_spec().expose is True
