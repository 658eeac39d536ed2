// The dashboard page's own script, run without a browser: its render functions only build strings,
// and fetch never answers, so the refresh it starts stays idle. Tests read its functions by name.
import vm from 'node:vm';
import { DASHBOARD_HTML } from '../../../src/policy-server/api/dashboard.js';

export function dashboardPage(): vm.Context {
  const script = /<script>([^]*)<\/script>/.exec(DASHBOARD_HTML)![1]!;
  const page = vm.createContext({
    fetch: () => new Promise(() => {}),
    setInterval: () => 0,
    document: {},
    location: { hash: '', pathname: '/', search: '' },
    sessionStorage: { getItem: () => null, setItem: () => undefined },
    history: { replaceState: () => undefined },
  });
  vm.runInContext(script, page);
  return page;
}
