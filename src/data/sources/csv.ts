/**
 * CSV as RFC 4180 defines it: a header row names the columns; fields are separated by
 * commas; a field in double quotes may hold commas, line breaks and "" (an escaped quote);
 * records end with CRLF or LF. Every value is a string.
 */
import { DataError } from '../errors.js';
import type { Row, RowSet } from './rows.js';

interface Record_ {
  fields: string[];
  line: number;
}

function records(text: string, file: string): Record_[] {
  const out: Record_[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let i = 0;
  let quotedField = false;
  const endField = () => {
    fields.push(field);
    field = '';
    quotedField = false;
  };
  const endRecord = () => {
    const blank = fields.length === 0 && field === '' && !quotedField;
    endField();
    // A blank line (a single empty unquoted field) is not a record; `""` alone is.
    if (!blank) out.push({ fields, line: recordLine });
    fields = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' && field === '' && !quotedField) {
      // Quoted field: read up to the closing quote.
      const startLine = line;
      quotedField = true;
      i++;
      for (;;) {
        if (i >= text.length) throw new DataError(`${file}:${startLine}: a quoted field is never closed`);
        const q = text[i]!;
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new DataError(
          `${file}:${line}: unexpected character ${JSON.stringify(next)} after a closing quote (write "" for a quote inside a quoted field)`,
        );
      }
      continue;
    }
    if (c === ',') {
      endField();
      i++;
    } else if (c === '\n' || c === '\r') {
      endRecord();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      recordLine = line;
    } else {
      if (c === '"')
        throw new DataError(`${file}:${line}: a quote inside an unquoted field (quote the whole field and write "" for the quote)`);
      field += c;
      i++;
    }
  }
  if (field !== '' || fields.length > 0 || quotedField) endRecord();
  return out;
}

export function parseCsv(text: string, file: string): RowSet {
  const recs = records(text.replace(/^\uFEFF/, ''), file);
  if (recs.length === 0) throw new DataError(`${file}: empty CSV file (expected a header row naming the columns)`);
  const header = recs[0]!.fields;
  const seen = new Set<string>();
  for (const name of header) {
    if (name === '') throw new DataError(`${file}:1: the header row has an empty column name`);
    if (seen.has(name)) throw new DataError(`${file}:1: the header row names column "${name}" twice`);
    seen.add(name);
  }
  const rows: Row[] = [];
  const lines: number[] = [];
  for (const rec of recs.slice(1)) {
    if (rec.fields.length !== header.length) {
      throw new DataError(`${file}:${rec.line}: ${rec.fields.length} fields, but the header has ${header.length} (${header.join(', ')})`);
    }
    const row: Row = {};
    header.forEach((name, j) => (row[name] = rec.fields[j]));
    rows.push(row);
    lines.push(rec.line);
  }
  return { file, rows, where: (i) => `line ${lines[i]}` };
}
