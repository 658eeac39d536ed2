import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The parts never import each other: each may use src/core (ports, shared types, SAIR's names) and
// src/common (config, logging, metrics, errors); only src/cmd wires parts together. The policy
// server is the one wing built around a part: it may import the policy, never the reverse. The
// failsafe is a part of its own (a separate small Deployment) and imports no other part.
const PARTS = ['webhook', 'device-plugin', 'policy', 'policy-server', 'failsafe', 'sim', 'check', 'cmd'];
const boundary = (part, allowed) => ({
  files: [`src/${part}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: PARTS.filter((p) => p !== part && !allowed.includes(p)).map((p) => ({
          group: [`**/${p}/*`, `**/${p}/**`],
          message: `src/${part} must not import src/${p}: share through src/core or src/common, and wire parts together in src/cmd.`,
        })),
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['dist/', 'dist-bench/', 'node_modules/', 'native/', 'coverage/', 'out/', '**/*.html'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', fetch: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  boundary('webhook', []),
  boundary('device-plugin', []),
  boundary('policy', []),
  boundary('policy-server', ['policy']),
  boundary('failsafe', []),
  boundary('sim', []),
  boundary('check', []),
  {
    files: ['src/core/**/*.ts', 'src/common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: PARTS.map((p) => ({ group: [`**/${p}/*`, `**/${p}/**`], message: `src/core and src/common are shared by every part and import none of them (${p}).` })) },
      ],
    },
  },
);
