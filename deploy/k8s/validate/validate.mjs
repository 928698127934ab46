// Validates Kubernetes manifests (YAML, several documents) read from stdin
// against the Kubernetes OpenAPI schemas bundled in npm's kubernetes-models,
// offline. Exit 0 if every object is valid, 1 naming each invalid one.
//
// ES module: run it from a folder where package.json's dependencies are
// installed (tests/deploy_lint_test.sh copies it next to node_modules).
//
//   kubectl kustomize deploy/k8s/overlays/partner | node validate.mjs
import fs from 'node:fs';
import yaml from 'js-yaml';

const modules = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
};

const docs = yaml.loadAll(fs.readFileSync(0, 'utf8')).filter((d) => d);
let failed = 0;
for (const doc of docs) {
  const where = `${doc.kind}/${doc.metadata && doc.metadata.name}`;
  const mod = modules[doc.apiVersion];
  const Model = mod && (await import(mod))[doc.kind];
  if (!Model) {
    console.error(`${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`${where}: valid`);
  } catch (e) {
    console.error(`${where}: ${e.message}`);
    failed++;
  }
}
if (docs.length === 0) {
  console.error('no objects on stdin');
  failed++;
}
process.exit(failed ? 1 : 0);
