#!/usr/bin/env python3
"""Unit tests for bench/kernel_split.py's sample buckets.

    python3 -m unittest discover -s bench -p 'test_*.py'
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_split as ks  # noqa: E402

K = 0xFFFF_FFFF_8100_0000
U = 0x5555_5555_0000


class Bucket(unittest.TestCase):
    def test_call_chains(self):
        cases = [
            ("user leaf", U, ["parse_request", "main"], ks.USER),
            # A user-space leaf stays user space whatever the chain says.
            ("user leaf under send", U, ["tcp_sendmsg"], ks.USER),
            ("send via io_uring", K,
             ["_copy_from_iter", "tcp_sendmsg_locked", "tcp_sendmsg", "io_send", "io_issue_sqe",
              "io_submit_sqes", "__do_sys_io_uring_enter", "do_syscall_64"], ks.SEND),
            ("peer's receive run by our send", K,
             ["_raw_spin_unlock_irqrestore", "sock_def_readable", "tcp_rcv_established",
              "tcp_v4_rcv", "ip_rcv", "__netif_receive_skb_core", "process_backlog",
              "net_rx_action", "handle_softirqs", "do_softirq", "__dev_queue_xmit",
              "ip_finish_output2", "__tcp_transmit_skb", "tcp_write_xmit", "tcp_sendmsg_locked",
              "tcp_sendmsg"], ks.PEER_RECEIVE),
            ("deferred frees inside softirq", K,
             ["kfree_skbmem", "skb_defer_free_flush", "net_rx_action", "handle_softirqs",
              "do_softirq", "tcp_sendmsg"], ks.FREE_SENT),
            ("receive via epoll loop", K,
             ["_copy_to_iter", "tcp_recvmsg_locked", "tcp_recvmsg", "inet_recvmsg",
              "sock_recvmsg", "__x64_sys_recvfrom", "do_syscall_64"], ks.RECEIVE),
            ("splice out of a socket", K, ["skb_splice_bits", "tcp_splice_read"], ks.RECEIVE),
            ("epoll wait", K, ["ep_poll", "do_epoll_wait", "do_syscall_64"], ks.EVENTS),
            ("io_uring task work", K, ["io_poll_task_func", "tctx_task_work"], ks.EVENTS),
            ("system call entry", K, ["entry_SYSCALL_64"], ks.EVENTS),
            ("timer interrupt", K, ["hrtimer_interrupt", "sysvec_apic_timer_interrupt"], ks.OTHER),
            ("empty chain", K, [], ks.OTHER),
        ]
        for name, ip, frames, want in cases:
            with self.subTest(name):
                self.assertEqual(ks.bucket(ip, frames), want)


class ParseScript(unittest.TestCase):
    def test_keeps_only_the_proxys_samples(self):
        text = (
            "  101 \n\tffffffff81000010 tcp_sendmsg+0x10 ([kernel.kallsyms])\n"
            "\tffffffff81000020 io_issue_sqe+0x20 ([kernel.kallsyms])\n\n"
            "  202 \n\tffffffff81000030 ep_poll+0x1 ([kernel.kallsyms])\n\n"
            "  101 \n\t555555550010 parse_request+0x5 (/usr/bin/ringproxy)\n\n"
            "garbage\n\n"
            "  101 \n\n"
        )
        got = ks.parse_script(text, {101})
        self.assertEqual(got, [
            (0xFFFFFFFF81000010, ["tcp_sendmsg", "io_issue_sqe"]),
            (0x555555550010, ["parse_request"]),
        ])

    def test_shares_sum_to_one(self):
        samples = [(K, ["tcp_sendmsg"]), (U, ["f"]), (U, ["g"]), (K, ["ep_poll"])]
        sh = ks.shares(samples)
        self.assertAlmostEqual(sum(sh.values()), 1.0)
        self.assertAlmostEqual(sh[ks.USER], 0.5)
        self.assertAlmostEqual(sh[ks.SEND], 0.25)
        self.assertEqual(set(sh), set(ks.BUCKETS))
        self.assertEqual(ks.shares([])[ks.USER], 0.0)


if __name__ == "__main__":
    unittest.main()
