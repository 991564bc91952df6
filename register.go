package circuit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
)

// ErrNotRegistered is wrapped by the error of spawning a function that was
// not registered with Register.
var ErrNotRegistered = errors.New("function not registered")

// fnInfo is a registered function.
type fnInfo struct {
	name   string
	v      reflect.Value
	t      reflect.Type
	ctx    bool // its first parameter is a context.Context, which the worker supplies
	errOut bool // its last result is an error
}

var registry struct {
	sync.RWMutex
	byName map[string]*fnInfo
	byPC   map[uintptr]*fnInfo
}

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
)

// Register makes functions spawnable. Call it at init time (from init or a
// package-level variable), so that it has run in a worker before Main. A
// function's parameters and results must be encodable as JSON (Chan values
// are); its first parameter may be a context.Context, supplied by the
// worker and canceled when the worker is told to stop (SIGTERM), and its
// last result may be an error. Register panics if fn is not a function,
// since that is a mistake in the program, not a condition to handle.
func Register(fns ...any) {
	registry.Lock()
	defer registry.Unlock()
	if registry.byName == nil {
		registry.byName = map[string]*fnInfo{}
		registry.byPC = map[uintptr]*fnInfo{}
	}
	for _, fn := range fns {
		v := reflect.ValueOf(fn)
		if v.Kind() != reflect.Func || v.IsNil() {
			panic(fmt.Sprintf("circuit.Register: %T is not a function", fn))
		}
		f := runtime.FuncForPC(v.Pointer())
		if f == nil {
			panic(fmt.Sprintf("circuit.Register: no name for %T", fn))
		}
		t := v.Type()
		info := &fnInfo{name: f.Name(), v: v, t: t}
		info.ctx = t.NumIn() > 0 && t.In(0) == ctxType
		info.errOut = t.NumOut() > 0 && t.Out(t.NumOut()-1) == errType
		registry.byName[info.name] = info
		registry.byPC[v.Pointer()] = info
	}
}

// lookup finds a registered function by value.
func lookup(fn any) (*fnInfo, error) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return nil, fmt.Errorf("%T is not a function", fn)
	}
	registry.RLock()
	info := registry.byPC[v.Pointer()]
	registry.RUnlock()
	if info == nil {
		name := "(unnamed)"
		if f := runtime.FuncForPC(v.Pointer()); f != nil {
			name = f.Name()
		}
		return nil, fmt.Errorf("%w: %s (call circuit.Register(%s) at init time)", ErrNotRegistered, name, name)
	}
	return info, nil
}

// lookupName finds a registered function by name, in a worker.
func lookupName(name string) (*fnInfo, error) {
	registry.RLock()
	defer registry.RUnlock()
	if info := registry.byName[name]; info != nil {
		return info, nil
	}
	return nil, fmt.Errorf("%w in this program: %s", ErrNotRegistered, name)
}

// params are the parameter types the spawner supplies.
func (f *fnInfo) params() []reflect.Type {
	var out []reflect.Type
	for i := 0; i < f.t.NumIn(); i++ {
		if i == 0 && f.ctx {
			continue
		}
		out = append(out, f.t.In(i))
	}
	return out
}

// results are the result types Wait returns, without a trailing error.
func (f *fnInfo) results() []reflect.Type {
	n := f.t.NumOut()
	if f.errOut {
		n--
	}
	out := make([]reflect.Type, n)
	for i := range out {
		out[i] = f.t.Out(i)
	}
	return out
}

// encodeArgs checks args against the function's parameters and encodes
// them, naming the argument that does not fit.
func (f *fnInfo) encodeArgs(args []any) ([]json.RawMessage, error) {
	params := f.params()
	variadic := f.t.IsVariadic()
	if !variadic && len(args) != len(params) || variadic && len(args) < len(params)-1 {
		return nil, fmt.Errorf("%s takes %d argument(s), got %d", f.name, len(params), len(args))
	}
	out := make([]json.RawMessage, 0, len(args))
	for i, a := range args {
		want := f.paramType(params, i)
		if a == nil {
			switch want.Kind() {
			case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
			default:
				return nil, fmt.Errorf("argument %d of %s is nil, want %s", i+1, f.name, want)
			}
		} else if !reflect.TypeOf(a).AssignableTo(want) {
			return nil, fmt.Errorf("argument %d of %s is %T, want %s", i+1, f.name, a, want)
		}
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d of %s (%T) cannot be encoded: %w", i+1, f.name, a, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// paramType is the type argument i must have, spreading a variadic tail.
func (f *fnInfo) paramType(params []reflect.Type, i int) reflect.Type {
	if f.t.IsVariadic() && i >= len(params)-1 {
		return params[len(params)-1].Elem()
	}
	return params[i]
}

// call decodes the arguments, calls the function and encodes its results.
func (f *fnInfo) call(ctx context.Context, raw []json.RawMessage) ([]json.RawMessage, error) {
	params := f.params()
	in := make([]reflect.Value, 0, len(raw)+1)
	if f.ctx {
		in = append(in, reflect.ValueOf(ctx))
	}
	for i, r := range raw {
		t := f.paramType(params, i)
		v := reflect.New(t)
		if err := json.Unmarshal(r, v.Interface()); err != nil {
			return nil, &decodeError{fmt.Errorf("decoding argument %d of %s (%s): %w", i+1, f.name, t, err)}
		}
		in = append(in, v.Elem())
	}
	out := f.v.Call(in)
	var ferr error
	if f.errOut {
		if e := out[len(out)-1]; !e.IsNil() {
			ferr = e.Interface().(error)
		}
		out = out[:len(out)-1]
	}
	results := make([]json.RawMessage, 0, len(out))
	for i, v := range out {
		b, err := json.Marshal(v.Interface())
		if err != nil {
			return nil, fmt.Errorf("result %d of %s (%s) cannot be encoded: %w", i+1, f.name, v.Type(), err)
		}
		results = append(results, b)
	}
	return results, ferr
}

// decodeResults decodes a worker's results into the function's types.
func (f *fnInfo) decodeResults(raw []json.RawMessage) ([]any, error) {
	types := f.results()
	if len(raw) != len(types) {
		return nil, fmt.Errorf("worker of %s returned %d results, want %d", f.name, len(raw), len(types))
	}
	out := make([]any, len(raw))
	for i, r := range raw {
		v := reflect.New(types[i])
		if err := json.Unmarshal(r, v.Interface()); err != nil {
			return nil, fmt.Errorf("decoding result %d of %s (%s): %w", i+1, f.name, types[i], err)
		}
		out[i] = v.Elem().Interface()
	}
	return out, nil
}

// decodeError is a request the worker could not decode.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }
