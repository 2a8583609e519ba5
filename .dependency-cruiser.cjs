// Which folder may import which: the arrows run one way (see README, Layout). Checked by `npm run lint`.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'product-not-to-tools',
      comment: 'src/ is what runs on a host; only the CLI entry of the tool commands loads bench/ or testbed/',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/tools\\.ts$' },
      to: { path: '^(bench|testbed)/' },
    },
    {
      name: 'testbed-not-to-bench',
      severity: 'error',
      from: { path: '^testbed/' },
      to: { path: '^bench/' },
    },
    {
      name: 'nothing-to-tests',
      severity: 'error',
      from: { path: '^(src|bench|testbed)/' },
      to: { path: '^test/' },
    },
    {
      name: 'not-up-to-cli',
      comment: 'the CLI is the top: nothing below it imports it',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'not-up-to-daemon',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(cli/|daemon\\.ts$)' },
      to: { path: '^src/daemon\\.ts$' },
    },
    {
      name: 'lease-knows-no-packets',
      comment: 'leases and the network config know nothing of backends, datapaths, encaps or the addon',
      severity: 'error',
      from: { path: '^src/(lease|config)/' },
      to: { path: '^src/(backend|datapath|encap|net|metrics|cni)/|^src/native\\.ts$' },
    },
    {
      name: 'encap-is-pure',
      comment: 'encaps are bytes in, bytes out: no etcd, iproute2, datapath or backend',
      severity: 'error',
      from: { path: '^src/encap/' },
      to: { path: '^src/(lease|config|backend|datapath|net|metrics|cni)/|^src/native\\.ts$' },
    },
    {
      name: 'datapath-not-to-backend',
      severity: 'error',
      from: { path: '^src/datapath/' },
      to: { path: '^src/(backend|lease|config|metrics|cni)/' },
    },
    {
      name: 'config-below-lease',
      comment: 'the lease manager reads the network config; the config knows nothing of leases',
      severity: 'error',
      from: { path: '^src/config/' },
      to: { path: '^src/lease/' },
    },
    {
      name: 'ip-is-a-leaf',
      comment: 'address math that every part shares depends on nothing of weft',
      severity: 'error',
      from: { path: '^src/(ip|util)/' },
      to: { path: '^src/', pathNot: '^src/(ip|util)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|node_modules|bench/results)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.test.json' },
  },
};
