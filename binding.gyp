{
  "targets": [
    {
      "target_name": "weft",
      "sources": [
        "native/binding.c",
        "native/csum.c",
        "native/ipv4.c",
        "native/ipv6.c",
        "native/encap.c",
        "native/encap_udp.c",
        "native/encap_vxlan.c",
        "native/encap_geneve.c",
        "native/icmp.c",
        "native/icmp6.c",
        "native/tun.c",
        "native/udp.c",
        "native/gso.c",
        "native/gro.c",
        "native/queue.c",
        "native/wg.c"
      ],
      "libraries": ["-lcrypto", "-lsodium"],
      "defines": ["_GNU_SOURCE"],
      "cflags!": ["-Wno-unused-parameter"],
      "cflags_c": ["-std=c11", "-Wall", "-Wextra"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags_c": ["-O2"]
        }
      }
    }
  ]
}
