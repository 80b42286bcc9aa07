package tfstate_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
	"github.com/oci-tfstate/oci-tfstate/clients/go/tfstate"
)

// Every call of a test step is bounded, so a broken server fails the test instead of hanging it.
const stepTimeout = 15 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	t.Cleanup(cancel)
	return ctx
}

func stateBytes(serial int, lineage string) []byte {
	return []byte(fmt.Sprintf(`{"version":4,"serial":%d,"lineage":%q,"outputs":{},"resources":[]}`, serial, lineage))
}

func md5Of(b []byte) []byte {
	sum := md5.Sum(b)
	return sum[:]
}

func wantCode(t *testing.T, err error, code connect.Code) *connect.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %v, the call succeeded", code)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("want %v, got %v: %v", code, got, err)
	}
	connectErr, ok := err.(*connect.Error)
	if !ok {
		t.Fatalf("want a *connect.Error, got %T", err)
	}
	return connectErr
}

func put(ctx context.Context, t *testing.T, c *tfstate.Client, workspace string, state []byte, lockID string) *tfstatev1.StateMetadata {
	t.Helper()
	res, err := c.State.PutState(ctx, connect.NewRequest(&tfstatev1.PutStateRequest{
		Workspace: workspace, State: state, Md5: md5Of(state), LockId: lockID,
	}))
	if err != nil {
		t.Fatalf("PutState %s: %v", workspace, err)
	}
	return res.Msg.GetMetadata()
}

func lock(ctx context.Context, t *testing.T, c *tfstate.Client, workspace, who string) *tfstatev1.LockResponse {
	t.Helper()
	res, err := c.State.Lock(ctx, connect.NewRequest(&tfstatev1.LockRequest{
		Workspace: workspace,
		Lock:      &tfstatev1.LockInfo{Operation: "OperationTypeApply", Who: who, Version: "1.10.0", Info: "go client test"},
	}))
	if err != nil {
		t.Fatalf("Lock %s: %v", workspace, err)
	}
	return res.Msg
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestCreateWorkspace(t *testing.T) {
	eachTarget(t, func(t *testing.T, c *tfstate.Client) {
		ctx := testContext(t)
		name := workspaceName("create")
		created, err := c.Workspaces.CreateWorkspace(ctx, connect.NewRequest(&tfstatev1.CreateWorkspaceRequest{Name: name}))
		if err != nil {
			t.Fatal(err)
		}
		ws := created.Msg.GetWorkspace()
		if ws.GetName() != name || ws.GetHasState() || ws.GetLock() != nil {
			t.Fatalf("created workspace = %v, want %q without state or lock", ws, name)
		}

		_, err = c.Workspaces.CreateWorkspace(ctx, connect.NewRequest(&tfstatev1.CreateWorkspaceRequest{Name: name}))
		wantCode(t, err, connect.CodeAlreadyExists)

		got, err := c.Workspaces.GetWorkspace(ctx, connect.NewRequest(&tfstatev1.GetWorkspaceRequest{
			Name: name, View: tfstatev1.WorkspaceView_WORKSPACE_VIEW_FULL,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if got.Msg.GetWorkspace().GetName() != name || got.Msg.GetWorkspace().GetHasState() {
			t.Fatalf("GetWorkspace = %v", got.Msg.GetWorkspace())
		}

		_, err = c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: name}))
		wantCode(t, err, connect.CodeNotFound)

		_, err = c.Workspaces.CreateWorkspace(ctx, connect.NewRequest(&tfstatev1.CreateWorkspaceRequest{Name: ""}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})
}

func TestPutGetRoundTripWithMD5(t *testing.T) {
	eachTarget(t, func(t *testing.T, c *tfstate.Client) {
		ctx := testContext(t)
		name := workspaceName("roundtrip")
		state := stateBytes(1, name)
		meta := put(ctx, t, c, name, state, "")
		if !bytes.Equal(meta.GetMd5(), md5Of(state)) || meta.GetSizeBytes() != int64(len(state)) {
			t.Fatalf("PutState metadata md5=%x size=%d, want md5=%x size=%d", meta.GetMd5(), meta.GetSizeBytes(), md5Of(state), len(state))
		}
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(meta.GetDigest()) {
			t.Fatalf("digest %q is not a sha256 digest", meta.GetDigest())
		}

		got, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: name}))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Msg.GetState(), state) {
			t.Fatalf("GetState returned %q, want %q", got.Msg.GetState(), state)
		}
		if !bytes.Equal(md5Of(got.Msg.GetState()), got.Msg.GetMetadata().GetMd5()) {
			t.Fatal("the MD5 in the metadata does not match the bytes received")
		}
		if got.Msg.GetMetadata().GetDigest() != meta.GetDigest() || got.Msg.GetNotModified() {
			t.Fatalf("GetState metadata = %v, want digest %s", got.Msg.GetMetadata(), meta.GetDigest())
		}

		same, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: name, IfNoneMatch: meta.GetDigest()}))
		if err != nil {
			t.Fatal(err)
		}
		if !same.Msg.GetNotModified() || len(same.Msg.GetState()) != 0 {
			t.Fatalf("GetState with if_none_match: not_modified=%v, %d bytes", same.Msg.GetNotModified(), len(same.Msg.GetState()))
		}

		// A wrong checksum is refused before anything is stored.
		other := stateBytes(2, name)
		_, err = c.State.PutState(ctx, connect.NewRequest(&tfstatev1.PutStateRequest{Workspace: name, State: other, Md5: md5Of(state)}))
		wantCode(t, err, connect.CodeInvalidArgument)
		after, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: name}))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after.Msg.GetState(), state) {
			t.Fatal("a PutState with a wrong MD5 changed the state")
		}
	})
}

func TestLockConflictCarriesHolder(t *testing.T) {
	eachTarget(t, func(t *testing.T, c *tfstate.Client) {
		ctx := testContext(t)
		name := workspaceName("conflict")
		held := lock(ctx, t, c, name, "alice@ci")
		if !uuidPattern.MatchString(held.GetLock().GetId()) {
			t.Fatalf("the server assigned lock ID %q, want a UUID", held.GetLock().GetId())
		}

		_, err := c.State.Lock(ctx, connect.NewRequest(&tfstatev1.LockRequest{
			Workspace: name,
			Lock:      &tfstatev1.LockInfo{Id: "bob-lock", Operation: "OperationTypePlan", Who: "bob@laptop"},
		}))
		wantCode(t, err, connect.CodeFailedPrecondition)
		detail, ok := tfstate.LockHolder(err)
		if !ok {
			t.Fatalf("the error carries no LockHeldDetail: %v", err)
		}
		holder := detail.GetHolder()
		if holder.GetId() != held.GetLock().GetId() || holder.GetWho() != "alice@ci" ||
			holder.GetOperation() != "OperationTypeApply" || holder.GetVersion() != "1.10.0" ||
			holder.GetInfo() != "go client test" || holder.GetPath() != held.GetLock().GetPath() {
			t.Fatalf("holder = %v, want the lock taken: %v", holder, held.GetLock())
		}
		if detail.GetGeneration() != held.GetGeneration() || holder.GetCreated() == nil {
			t.Fatalf("detail generation %d created %v, want generation %d and a creation time",
				detail.GetGeneration(), holder.GetCreated(), held.GetGeneration())
		}
		if _, ok := tfstate.SizeLimit(err); ok {
			t.Fatal("a lock conflict reported a SizeLimitDetail")
		}

		// Locking again with the holder's ID is a harmless retry.
		again, err := c.State.Lock(ctx, connect.NewRequest(&tfstatev1.LockRequest{Workspace: name, Lock: held.GetLock()}))
		if err != nil || again.Msg.GetLock().GetId() != held.GetLock().GetId() {
			t.Fatalf("relock with the holder's ID: %v, %v", again, err)
		}

		got, err := c.State.GetLock(ctx, connect.NewRequest(&tfstatev1.GetLockRequest{Workspace: name}))
		if err != nil || got.Msg.GetLock().GetId() != held.GetLock().GetId() {
			t.Fatalf("GetLock = %v, %v", got, err)
		}

		_, err = c.State.Unlock(ctx, connect.NewRequest(&tfstatev1.UnlockRequest{Workspace: name, LockId: "bob-lock"}))
		wantCode(t, err, connect.CodeFailedPrecondition)
		if _, ok := tfstate.LockHolder(err); !ok {
			t.Fatal("an Unlock with the wrong ID carries no LockHeldDetail")
		}
		released, err := c.State.Unlock(ctx, connect.NewRequest(&tfstatev1.UnlockRequest{Workspace: name, LockId: held.GetLock().GetId()}))
		if err != nil || released.Msg.GetReleasedLock().GetId() != held.GetLock().GetId() {
			t.Fatalf("Unlock = %v, %v", released, err)
		}
		lock(ctx, t, c, name, "bob@laptop")
	})
}

func TestFencedPut(t *testing.T) {
	eachTarget(t, func(t *testing.T, c *tfstate.Client) {
		ctx := testContext(t)
		name := workspaceName("fenced")
		first := stateBytes(1, name)
		put(ctx, t, c, name, first, "")
		held := lock(ctx, t, c, name, "alice@ci")
		lockID := held.GetLock().GetId()

		for _, wrong := range []string{"", "not-the-holder"} {
			_, err := c.State.PutState(ctx, connect.NewRequest(&tfstatev1.PutStateRequest{
				Workspace: name, State: stateBytes(2, name), LockId: wrong,
			}))
			wantCode(t, err, connect.CodeFailedPrecondition)
			detail, ok := tfstate.LockHolder(err)
			if !ok || detail.GetHolder().GetId() != lockID {
				t.Fatalf("fenced PutState with lock ID %q: detail %v, want holder %s", wrong, detail, lockID)
			}
		}
		got, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: name}))
		if err != nil || !bytes.Equal(got.Msg.GetState(), first) {
			t.Fatalf("a refused PutState changed the state: %v", err)
		}

		second := stateBytes(2, name)
		put(ctx, t, c, name, second, lockID)

		if _, err := c.State.Unlock(ctx, connect.NewRequest(&tfstatev1.UnlockRequest{Workspace: name, LockId: lockID})); err != nil {
			t.Fatal(err)
		}
		// The lock is gone, so a write quoting it works from a stale view and is refused.
		_, err = c.State.PutState(ctx, connect.NewRequest(&tfstatev1.PutStateRequest{
			Workspace: name, State: stateBytes(3, name), LockId: lockID,
		}))
		wantCode(t, err, connect.CodeFailedPrecondition)

		got, err = c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: name}))
		if err != nil || !bytes.Equal(got.Msg.GetState(), second) {
			t.Fatalf("GetState after the fenced writes = %q, %v; want %q", got.Msg.GetState(), err, second)
		}
	})
}

func TestWatchLockStreamsLockAndUnlock(t *testing.T) {
	eachTarget(t, func(t *testing.T, c *tfstate.Client) {
		ctx := testContext(t)
		name := workspaceName("watch")
		stream, err := c.State.WatchLock(ctx, connect.NewRequest(&tfstatev1.WatchLockRequest{Workspace: name}))
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		next := func(want tfstatev1.LockEventKind) *tfstatev1.WatchLockResponse {
			t.Helper()
			if !stream.Receive() {
				t.Fatalf("WatchLock ended before %v: %v", want, stream.Err())
			}
			msg := stream.Msg()
			if msg.GetKind() != want || msg.GetWorkspace() != name {
				t.Fatalf("WatchLock sent %v for %q, want %v for %q", msg.GetKind(), msg.GetWorkspace(), want, name)
			}
			return msg
		}

		if snapshot := next(tfstatev1.LockEventKind_LOCK_EVENT_KIND_SNAPSHOT); snapshot.GetLock() != nil {
			t.Fatalf("the snapshot of an unlocked workspace names a holder: %v", snapshot.GetLock())
		}
		next(tfstatev1.LockEventKind_LOCK_EVENT_KIND_SNAPSHOT_COMPLETE)

		held := lock(ctx, t, c, name, "alice@ci")
		locked := next(tfstatev1.LockEventKind_LOCK_EVENT_KIND_LOCKED)
		if locked.GetLock().GetId() != held.GetLock().GetId() || locked.GetLock().GetWho() != "alice@ci" ||
			locked.GetGeneration() != held.GetGeneration() || locked.GetObserveTime() == nil {
			t.Fatalf("LOCKED event = %v, want holder %v generation %d", locked, held.GetLock(), held.GetGeneration())
		}

		if _, err := c.State.Unlock(ctx, connect.NewRequest(&tfstatev1.UnlockRequest{
			Workspace: name, LockId: held.GetLock().GetId(),
		})); err != nil {
			t.Fatal(err)
		}
		unlocked := next(tfstatev1.LockEventKind_LOCK_EVENT_KIND_UNLOCKED)
		if unlocked.GetLock() != nil && unlocked.GetLock().GetId() != held.GetLock().GetId() {
			t.Fatalf("UNLOCKED names holder %v, want the released %s", unlocked.GetLock(), held.GetLock().GetId())
		}
	})
}

func TestListWorkspacesAndVersions(t *testing.T) {
	eachTarget(t, func(t *testing.T, c *tfstate.Client) {
		ctx := testContext(t)
		prefix := workspaceName("list")
		names := []string{prefix + "-c", prefix + "-a", prefix + "-b"}
		for _, name := range names {
			if _, err := c.Workspaces.CreateWorkspace(ctx, connect.NewRequest(&tfstatev1.CreateWorkspaceRequest{Name: name})); err != nil {
				t.Fatal(err)
			}
		}
		states := [][]byte{stateBytes(1, prefix), stateBytes(2, prefix), stateBytes(3, prefix)}
		var metas []*tfstatev1.StateMetadata
		for _, state := range states {
			metas = append(metas, put(ctx, t, c, names[1], state, ""))
		}

		// Page through everything two at a time; other tests add workspaces meanwhile, so only
		// the order and the presence of ours are checked.
		var listed []*tfstatev1.Workspace
		token := ""
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatal("ListWorkspaces never returned an empty next_page_token")
			}
			res, err := c.Workspaces.ListWorkspaces(ctx, connect.NewRequest(&tfstatev1.ListWorkspacesRequest{PageSize: 2, PageToken: token}))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Msg.GetWorkspaces()) > 2 {
				t.Fatalf("a page of size 2 held %d workspaces", len(res.Msg.GetWorkspaces()))
			}
			listed = append(listed, res.Msg.GetWorkspaces()...)
			if token = res.Msg.GetNextPageToken(); token == "" {
				break
			}
		}
		var listedNames []string
		byName := map[string]*tfstatev1.Workspace{}
		for _, ws := range listed {
			listedNames = append(listedNames, ws.GetName())
			byName[ws.GetName()] = ws
		}
		if !slices.IsSorted(listedNames) {
			t.Fatalf("ListWorkspaces is not sorted by name: %v", listedNames)
		}
		for _, name := range append([]string{"default"}, names...) {
			if byName[name] == nil {
				t.Fatalf("ListWorkspaces misses %q: %v", name, listedNames)
			}
		}
		withState := byName[names[1]]
		if !withState.GetHasState() || withState.GetDigest() != metas[2].GetDigest() || withState.GetVersion() != metas[2].GetVersion() {
			t.Fatalf("listed %v, want the last write %v", withState, metas[2])
		}
		if byName[names[0]].GetHasState() {
			t.Fatalf("%s has no state but is listed with one", names[0])
		}

		versions, err := c.State.ListVersions(ctx, connect.NewRequest(&tfstatev1.ListVersionsRequest{Workspace: names[1], PageSize: 2}))
		if err != nil {
			t.Fatal(err)
		}
		page := versions.Msg.GetVersions()
		if len(page) != 2 || versions.Msg.GetNextPageToken() == "" {
			t.Fatalf("first page: %d versions, next token %q; want 2 and a token", len(page), versions.Msg.GetNextPageToken())
		}
		rest, err := c.State.ListVersions(ctx, connect.NewRequest(&tfstatev1.ListVersionsRequest{
			Workspace: names[1], PageSize: 2, PageToken: versions.Msg.GetNextPageToken(),
		}))
		if err != nil {
			t.Fatal(err)
		}
		all := append(page, rest.Msg.GetVersions()...)
		if len(all) != 3 || rest.Msg.GetNextPageToken() != "" {
			t.Fatalf("%d versions in all (next token %q), want 3", len(all), rest.Msg.GetNextPageToken())
		}
		for i, v := range all {
			want := metas[len(metas)-1-i]
			if v.GetNumber() != want.GetVersion() || v.GetDigest() != want.GetDigest() {
				t.Fatalf("version %d = #%d %s, want #%d %s (newest first)", i, v.GetNumber(), v.GetDigest(), want.GetVersion(), want.GetDigest())
			}
		}

		oldest, err := c.State.GetVersion(ctx, connect.NewRequest(&tfstatev1.GetVersionRequest{Workspace: names[1], Version: metas[0].GetVersion()}))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(oldest.Msg.GetState(), states[0]) || !bytes.Equal(oldest.Msg.GetMetadata().GetMd5(), md5Of(states[0])) {
			t.Fatalf("GetVersion(%d) = %q, want %q", metas[0].GetVersion(), oldest.Msg.GetState(), states[0])
		}
		_, err = c.State.GetVersion(ctx, connect.NewRequest(&tfstatev1.GetVersionRequest{Workspace: names[1], Version: 999}))
		wantCode(t, err, connect.CodeNotFound)
	})
}

func TestOutputsAndSummaryMaskSensitiveValues(t *testing.T) {
	eachTarget(t, func(t *testing.T, c *tfstate.Client) {
		ctx := testContext(t)
		name := workspaceName("outputs")
		state := []byte(`{"version":4,"serial":3,"lineage":"lin","terraform_version":"1.9.0","resources":` +
			`[{"mode":"managed","type":"terraform_data","name":"x","instances":[{"attributes":{}}]}],` +
			`"outputs":{"ip":{"value":"10.0.0.1","type":"string"},"pw":{"value":"hunter2","type":"string","sensitive":true}}}`)
		put(ctx, t, c, name, state, "")
		outputs, err := c.State.GetOutputs(ctx, connect.NewRequest(&tfstatev1.GetOutputsRequest{Workspace: name}))
		if err != nil {
			t.Fatal(err)
		}
		got := outputs.Msg.GetOutputs()
		if outputs.Msg.GetFormat() != tfstatev1.StateFormat_STATE_FORMAT_TERRAFORM_JSON || len(got) != 2 ||
			got[0].GetValueJson() != `"10.0.0.1"` || !got[1].GetSensitive() || got[1].GetValueJson() != "" {
			t.Fatalf("GetOutputs = %v, want ip shown and pw masked", outputs.Msg)
		}
		summary, err := c.State.GetStateSummary(ctx, connect.NewRequest(&tfstatev1.GetStateSummaryRequest{Workspace: name}))
		if err != nil {
			t.Fatal(err)
		}
		s := summary.Msg.GetSummary()
		if s.GetSerial() != 3 || s.GetLineage() != "lin" || s.GetResourceCount() != 1 {
			t.Fatalf("GetStateSummary = %v, want serial 3, lineage lin, 1 resource", s)
		}
	})
}
