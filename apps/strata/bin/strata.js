#!/usr/bin/env node
// Stays valid before the first build, so npm can link the bin on a fresh install.
await import('../dist/main.js');
