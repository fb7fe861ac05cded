import { componentize } from '@bytecodealliance/componentize-js';
import { readFileSync } from 'node:fs';
const { component } = await componentize({ sourcePath: process.argv[3], witPath: process.argv[2], worldName: 'tool', disableFeatures: ['stdio','random','clocks','http','fetch-event'], debug: { bindings: false, wizerLogging: true } });
console.log(component.length);
