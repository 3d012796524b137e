import socket

import pytest
from cite.core.cluster import init_ray, unreachable
from cite.core.errors import CiteError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_a_dead_address_is_refused_at_once_with_the_advice():
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(CiteError, match=f"Cannot reach a Ray cluster at {address} \\(nothing answers.*start one here"):
        init_ray(address, "start one here")
    assert unreachable(f"ray://{address}") is not None


def test_a_listening_address_and_rays_own_names_are_left_to_ray():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert unreachable(f"127.0.0.1:{server.getsockname()[1]}") is None
    assert unreachable(None) is None and unreachable("auto") is None and unreachable("not-an-address") is None
