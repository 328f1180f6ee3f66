// Patients' documents (letters, scans): on a patient's page doctors read and print them and file
// new ones; reception files them without reading them back. And this workstation's watched
// folder and printer: the files the folder brought, the documents whose patient the user picks.
import { useEffect, useState, type FormEvent } from "react";
import { Button, Input, Label, SearchField, TextField } from "react-aria-components";
import {
  addDocument,
  assignImport,
  documentImage,
  importFiles,
  openImportFile,
  messageOf,
  openDocument,
  patientDocuments,
  printDocument,
  printers,
  retryImport,
  saveWorkstationSettings,
  workstationSettings,
} from "../api";
import type { ImportFile } from "../bindings/ImportFile";
import type { PatientDocument } from "../bindings/PatientDocument";
import type { Printout } from "../bindings/Printout";
import type { WorkstationSettings } from "../bindings/WorkstationSettings";
import { dayOf, timeOf } from "../format";
import { t, tKey } from "../i18n";
import { useLive } from "../live";
import { useSearch } from "./Patients";

/** What became of a print, in words. */
export function printoutText(p: Printout): string {
  if (p.job) return t("print.sent", { printer: p.printer ?? "", job: p.job });
  const viewer = p.opened ? t("print.opened") : t("print.notOpened");
  return p.printerProblem ? `${t("print.fellBack", { why: p.printerProblem })} ${viewer}` : viewer;
}

/** Tags as typed: separated by commas. */
function tagsOf(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** A chosen file's bytes in base64, as the command takes them. */
function readBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ""));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

function kib(size: number): string {
  return size < 1024 * 1024 ? `${Math.max(1, Math.round(size / 1024))} KiB` : `${(size / 1024 / 1024).toFixed(1)} MiB`;
}

/** Files a document for a patient: a PDF or an image, a title and tags. */
function AddDocument({ patientId, onAdded }: { patientId: string; onAdded: (title: string, version: number) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [title, setTitle] = useState("");
  // The title the file's name gave, while the user has not typed one of their own.
  const [named, setNamed] = useState(true);
  const [tags, setTags] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    try {
      const contents = await readBase64(file);
      const d = await addDocument(patientId, { title: title.trim(), tags: tagsOf(tags), file_name: file.name }, contents);
      setFile(null);
      setTitle("");
      setTags("");
      (document.getElementById("document-file") as HTMLInputElement | null)?.form?.reset();
      onAdded(d.title, d.versions[0]?.version ?? 1);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="panel form-grid" onSubmit={submit} aria-labelledby="add-document-heading">
      <h4 id="add-document-heading">{t("documents.add")}</h4>
      <label className="field">
        <span>{t("documents.file")}</span>
        <input
          id="document-file"
          type="file"
          accept="application/pdf,image/png,image/jpeg,image/tiff"
          required
          onChange={(e) => {
            const f = e.target.files?.[0] ?? null;
            setFile(f);
            if (f && (named || !title)) {
              setTitle(f.name.replace(/\.[^.]*$/, ""));
              setNamed(true);
            }
          }}
        />
      </label>
      <TextField
        value={title}
        onChange={(v) => {
          setTitle(v);
          setNamed(false);
        }}
        isRequired
        maxLength={200}
      >
        <Label>{t("documents.title")}</Label>
        <Input id="document-title" />
      </TextField>
      <TextField value={tags} onChange={setTags}>
        <Label>{t("documents.tags")}</Label>
        <Input id="document-tags" placeholder={t("documents.tagsHint")} />
      </TextField>
      <p className="muted">{t("documents.sameTitle")}</p>
      {error && <p className="error" role="alert">{error}</p>}
      <Button type="submit" id="document-submit" isDisabled={busy || !file || !title.trim()}>
        {t("documents.addSubmit")}
      </Button>
    </form>
  );
}

/** An image version, shown in the page (read through the node; nothing written to disk). */
function InlineImage({ doc, version }: { doc: PatientDocument; version: number }) {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    documentImage(doc.id, version)
      .then((s) => live && setSrc(s))
      .catch((e) => live && setError(messageOf(e)));
    return () => {
      live = false;
    };
  }, [doc.id, version]);
  if (error) return <p className="error" role="alert">{error}</p>;
  if (!src) return <p className="muted">{t("documents.loading")}</p>;
  return <img className="document-image" src={src} alt={t("documents.imageOf", { title: doc.title, n: version })} />;
}

function DocumentItem({ doc, timeZone, onMessage }: { doc: PatientDocument; timeZone: string; onMessage: (m: string) => void }) {
  const [showAll, setShowAll] = useState(false);
  const [shown, setShown] = useState<number | null>(null);
  const versions = showAll ? doc.versions : doc.versions.slice(0, 1);
  return (
    <li className="document">
      <strong>{doc.title}</strong>
      {doc.tags.length > 0 && (
        <span className="tags">
          {doc.tags.map((tag) => (
            <span key={tag} className="tag">
              {tag}
            </span>
          ))}
        </span>
      )}
      <ul className="versions" aria-label={t("documents.versionsOf", { title: doc.title })}>
        {versions.map((v) => (
          <li key={v.version}>
            {t("documents.version", { n: v.version })} · {tKey("media", v.media_type)} · {kib(v.size)} · {dayOf(v.added_at, timeZone)}{" "}
            {timeOf(v.added_at, timeZone)} · {v.added_by_name}
            {v.file_name && <span className="muted"> · {v.file_name}</span>}{" "}
            {(v.media_type === "image/png" || v.media_type === "image/jpeg") && (
              <Button className="small link" onPress={() => setShown(shown === v.version ? null : v.version)}>
                {shown === v.version ? t("documents.hide") : t("documents.show")}
              </Button>
            )}
            <Button
              className="small link"
              aria-label={`${t("documents.open")}: ${doc.title}, ${t("documents.version", { n: v.version })}`}
              onPress={() =>
                openDocument(doc.id, v.version)
                  .then((opened) => onMessage(opened ? t("print.opened") : t("print.notOpened")))
                  .catch((e) => onMessage(messageOf(e)))
              }
            >
              {t("documents.open")}
            </Button>
            <Button
              className="small link"
              aria-label={`${t("documents.print")}: ${doc.title}, ${t("documents.version", { n: v.version })}`}
              onPress={() =>
                printDocument(doc.id, v.version)
                  .then((p) => onMessage(printoutText(p)))
                  .catch((e) => onMessage(messageOf(e)))
              }
            >
              {t("documents.print")}
            </Button>
            {shown === v.version && <InlineImage doc={doc} version={v.version} />}
          </li>
        ))}
      </ul>
      {doc.versions.length > 1 && (
        <Button className="small link" onPress={() => setShowAll(!showAll)}>
          {showAll ? t("documents.hideVersions") : t("documents.allVersions", { n: doc.versions.length })}
        </Button>
      )}
    </li>
  );
}

/** A patient's documents: doctors read, print and file them (live); reception only files. */
export function PatientDocumentsView({ patientId, timeZone, reads }: { patientId: string; timeZone: string; reads: boolean }) {
  const docs = useLive(() => (reads ? patientDocuments(patientId) : Promise.resolve([])), [patientId, reads], ["document"]);
  const [adding, setAdding] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  return (
    <section aria-labelledby="documents-heading" className="documents">
      <h3 id="documents-heading">{t("documents.heading")}</h3>
      {docs.error && <p className="error" role="alert">{docs.error}</p>}
      {adding ? (
        <AddDocument
          patientId={patientId}
          onAdded={(title, version) => {
            setAdding(false);
            setMessage(t("documents.added", { title, n: version }));
          }}
        />
      ) : (
        <Button className="small secondary" id="document-open-form" onPress={() => setAdding(true)}>
          {t("documents.add")}
        </Button>
      )}
      {message && <p role="status">{message}</p>}
      {reads && docs.data?.length === 0 && <p>{t("documents.none")}</p>}
      {reads && (
        <ul className="document-list" aria-label={t("documents.heading")}>
          {(docs.data ?? []).map((d) => (
            <DocumentItem key={d.id} doc={d} timeZone={timeZone} onMessage={setMessage} />
          ))}
        </ul>
      )}
    </section>
  );
}

/** Says whose document a file of the watched folder is. */
function AssignForm({ file, onDone }: { file: ImportFile; onDone: () => void }) {
  const [text, setText] = useState("");
  const [title, setTitle] = useState(file.title ?? "");
  const [tags, setTags] = useState("");
  const [chosen, setChosen] = useState<{ id: string; label: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const hits = useSearch(text);
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!chosen) return;
    setError(null);
    try {
      await assignImport(file.name, { patient_id: chosen.id, title: title.trim(), tags: tagsOf(tags) });
      onDone();
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <form className="assign" onSubmit={submit} aria-label={t("folder.assignFor", { name: file.name })}>
      <p>
        <Button className="small secondary" onPress={() => openImportFile(file.name).catch((e) => setError(messageOf(e)))}>
          {t("folder.look")}
        </Button>
      </p>
      {chosen ? (
        <p>
          {t("folder.chosen", { patient: chosen.label })}{" "}
          <Button className="small link" onPress={() => setChosen(null)}>{t("folder.change")}</Button>
        </p>
      ) : (
        <>
          <SearchField value={text} onChange={setText}>
            <Label>{t("folder.findPatient")}</Label>
            <Input className="assign-search" />
          </SearchField>
          <ul className="hits">
            {(hits.data ?? []).flatMap((h) =>
              h.kind === "patient"
                ? [
                    <li key={h.patient.id}>
                      <Button
                        className="link"
                        onPress={() =>
                          setChosen({
                            id: h.patient.id,
                            label: `${h.patient.given_name} ${h.patient.family_name}, ${h.patient.birth_date}, ${t("patient.card", { card: h.patient.card_number })}`,
                          })
                        }
                      >
                        {h.patient.given_name} {h.patient.family_name}
                      </Button>
                      <span> · {h.patient.birth_date} · {h.patient.card_number}</span>
                    </li>,
                  ]
                : [],
            )}
          </ul>
        </>
      )}
      <TextField value={title} onChange={setTitle} isRequired maxLength={200}>
        <Label>{t("documents.title")}</Label>
        <Input />
      </TextField>
      <TextField value={tags} onChange={setTags}>
        <Label>{t("documents.tags")}</Label>
        <Input placeholder={t("documents.tagsHint")} />
      </TextField>
      {error && <p className="error" role="alert">{error}</p>}
      <Button type="submit" className="small" isDisabled={!chosen || !title.trim()}>
        {t("folder.send")}
      </Button>
    </form>
  );
}

/** This workstation's settings: the watched folder and the printer. */
function Settings({ onSaved }: { onSaved: () => void }) {
  const [settings, setSettings] = useState<WorkstationSettings | null>(null);
  const [folder, setFolder] = useState("");
  const [printer, setPrinter] = useState("");
  const [queues, setQueues] = useState<string[]>([]);
  const [queuesError, setQueuesError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    workstationSettings()
      .then((s) => {
        setSettings(s);
        setFolder(s.import_folder ?? "");
        setPrinter(s.printer ?? "");
      })
      .catch((e) => setError(messageOf(e)));
    printers()
      .then(setQueues)
      .catch((e) => setQueuesError(messageOf(e)));
  }, []);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setMessage(null);
    try {
      const s = await saveWorkstationSettings({ import_folder: folder.trim() || undefined, printer: printer || undefined });
      setSettings(s);
      setMessage(t("folder.saved"));
      onSaved();
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <form className="panel form-grid" onSubmit={submit} aria-labelledby="workstation-heading">
      <h3 id="workstation-heading">{t("folder.settings")}</h3>
      <TextField value={folder} onChange={setFolder} isDisabled={!settings}>
        <Label>{t("folder.folder")}</Label>
        <Input id="import-folder" placeholder="/srv/scans" />
      </TextField>
      <label className="field">
        <span>{t("folder.printer")}</span>
        <select id="printer" value={printer} onChange={(e) => setPrinter(e.target.value)}>
          <option value="">{t("folder.noPrinter")}</option>
          {[...new Set([...queues, ...(printer ? [printer] : [])])].map((q) => (
            <option key={q} value={q}>
              {q}
            </option>
          ))}
        </select>
      </label>
      {queuesError && <p className="muted">{queuesError}</p>}
      <p className="muted">{t("folder.naming")}</p>
      {error && <p className="error" role="alert">{error}</p>}
      {message && <p role="status">{message}</p>}
      <Button type="submit" id="workstation-save">{t("folder.save")}</Button>
    </form>
  );
}

/** The watched folder's files and this workstation's settings. */
export function FolderImportPanel() {
  // Read again after the settings changed (a new folder is watched from then).
  const [saved, setSaved] = useState(0);
  const view = useLive(importFiles, [saved], ["folder-import"]);
  const [assigning, setAssigning] = useState<string | null>(null);
  const data = view.data;
  return (
    <section aria-labelledby="folder-heading">
      <h2 id="folder-heading">{t("folder.heading")}</h2>
      <p>{t("folder.explain")}</p>
      {view.error && <p className="error" role="alert">{view.error}</p>}
      {data?.problem && <p className="error" role="alert">{data.problem}</p>}
      {data && (data.watching ? <p role="status">{t("folder.watching", { folder: data.folder ?? "" })}</p> : !data.folder && <p>{t("folder.notSet")}</p>)}
      {data && data.files.length > 0 && (
        <table aria-labelledby="folder-files">
          <caption id="folder-files">{t("folder.files")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("folder.file")}</th>
              <th scope="col">{t("folder.kind")}</th>
              <th scope="col">{t("table.status")}</th>
              <th scope="col">{t("folder.detail")}</th>
            </tr>
          </thead>
          <tbody>
            {data.files.map((f) => (
              <tr key={f.name} className={`import-${f.state}`}>
                <td>{f.name}</td>
                <td>{tKey("fileKind", f.kind)}</td>
                <td>{tKey("importState", f.state)}</td>
                <td>
                  {f.detail}
                  {(f.state === "failed" || f.state === "waiting") && (
                    <>
                      {" "}
                      <Button className="small link" onPress={() => void retryImport(f.name)}>{t("folder.retry")}</Button>
                    </>
                  )}
                  {f.state === "needs-patient" &&
                    (assigning === f.name ? (
                      <AssignForm file={f} onDone={() => setAssigning(null)} />
                    ) : (
                      <>
                        {" "}
                        <Button className="small" onPress={() => setAssigning(f.name)}>{t("folder.choosePatient")}</Button>
                      </>
                    ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Settings onSaved={() => setSaved((n) => n + 1)} />
    </section>
  );
}
