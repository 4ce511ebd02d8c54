% rebase('layout.tpl', title=title)
<h2>Sign Out</h2>
<form action="/logout" method="post">
  <p>You are signed in as <strong>{{user.username}}</strong>.</p>
  <div class="actions"><input type="submit" value="Sign Out"></div>
  <input type="hidden" name="csrf_token" value="{{csrf_token()}}">
</form>
