// Which folder may import which: the arrows run one way (see README, Layout). Checked by `npm run lint`.

/** No module under `from` (but `fromNot`) imports one under `to` (but `toNot`). Paths are regular expressions. */
function forbid(name, from, to, { fromNot, toNot, comment } = {}) {
  return {
    name,
    severity: 'error',
    ...(comment ? { comment } : {}),
    from: { path: from, ...(fromNot ? { pathNot: fromNot } : {}) },
    to: { path: to, ...(toNot ? { pathNot: toNot } : {}) },
  };
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    forbid('product-not-to-tools', '^src/', '^(bench|testbed)/', {
      fromNot: '^src/cli/tools\\.ts$',
      comment: 'src/ is what runs on a host; only the CLI entry of the tool commands loads bench/ or testbed/',
    }),
    forbid('testbed-not-to-bench', '^testbed/', '^bench/'),
    forbid('nothing-to-tests', '^(src|bench|testbed)/', '^test/'),
    forbid('not-up-to-cli', '^src/', '^src/cli/', {
      fromNot: '^src/cli/',
      comment: 'the CLI is the top: nothing below it imports it',
    }),
    forbid('not-up-to-daemon', '^src/', '^src/daemon\\.ts$', { fromNot: '^src/(cli/|daemon\\.ts$)' }),
    forbid(
      'lease-knows-no-packets',
      '^src/(lease|config)/',
      '^src/(backend|datapath|encap|net|metrics|cni)/|^src/native\\.ts$',
      {
        comment: 'leases and the network config know nothing of backends, datapaths, encaps or the addon',
      },
    ),
    forbid('encap-is-pure', '^src/encap/', '^src/(lease|config|backend|datapath|net|metrics|cni)/|^src/native\\.ts$', {
      comment: 'encaps are bytes in, bytes out: no etcd, iproute2, datapath or backend',
    }),
    forbid('datapath-not-to-backend', '^src/datapath/', '^src/(backend|lease|config|metrics|cni)/'),
    forbid('config-below-lease', '^src/config/', '^src/lease/', {
      comment: 'the lease manager reads the network config; the config knows nothing of leases',
    }),
    forbid('ip-is-a-leaf', '^src/(ip|util)/', '^src/', {
      toNot: '^src/(ip|util)/',
      comment: 'address math that every part shares depends on nothing of weft',
    }),
    forbid('verdicts-is-a-leaf', '^src/verdicts\\.ts$', '^src/', {
      comment: 'the drop-reason table that encaps and the addon door share depends on nothing of weft',
    }),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|node_modules|bench/results)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.test.json' },
  },
};
