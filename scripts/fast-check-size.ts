// fast-check caps the lengths it generates by its `size` (default 'small': at most about 10 elements,
// whatever a test's maxLength says), so `fc.uint8Array({ maxLength: 700 })` gave at most 10 bytes. Every
// property test in the repository runs at 'medium' (lengths up to about 100); a test that needs its full
// maxLength says `size: 'max'`.
import fc from 'fast-check';

fc.configureGlobal({ ...fc.readConfigureGlobal(), baseSize: 'medium' });
