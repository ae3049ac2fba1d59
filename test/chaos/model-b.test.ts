/** Model-level chaos suite, seeds 5000..9999 (see model-suite.ts). */
import { describe } from 'vitest';
import { modelSuite } from './model-suite.js';

describe('chaos (model): overlapping scalers, faults, crashes, late webhooks', () => modelSuite(5000));
