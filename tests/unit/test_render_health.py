"""``proc_net_address``: how ``/proc/net/{tcp,udp}[6]`` print a local address (the script itself runs for real
in ``tests/integration/test_compose_healthcheck.py``)."""

from __future__ import annotations

from controller.render.health import proc_net_address


def test_ipv4_is_one_word_in_host_order_and_the_port_is_big_endian() -> None:
    assert proc_net_address("172.30.57.1", 8021, "little") == "01391EAC:1F55"
    assert proc_net_address("172.30.57.1", 8021, "big") == "AC1E3901:1F55"


def test_ipv6_is_four_words_each_in_host_order() -> None:
    assert proc_net_address("::1", 5060, "little") == "00000000000000000000000001000000:13C4"
    assert proc_net_address("2001:db8::5", 5080, "little") == "B80D0120000000000000000005000000:13D8"
    assert proc_net_address("2001:db8::5", 5080, "big") == "20010DB8000000000000000000000005:13D8"
